// asio_echo.cpp: the reference peer for bench/: a standalone-asio TCP echo server for Windows,
// written the way asio's own examples write one, so that the comparison measures the engines
// and not a handicapped opponent.
//
//   - one session object per connection, owned by shared_ptr through its pending handler;
//   - async_read_some into the session's buffer, then async_write of exactly what was read,
//     then read again (one operation in flight per connection, like our server);
//   - one io_context (on Windows: one I/O completion port) run by N threads;
//   - several accepts kept outstanding (AcceptEx under the hood) through a strand, so that
//     connection churn is not limited to one accept per round trip;
//   - TCP_NODELAY on every accepted socket (our server sets it too);
//   - stops cleanly on Ctrl+C, Ctrl+Break and console close: closes the listener, stops the
//     io_context, joins the threads, and lets the sessions close their sockets.
//
// Build (see bench/run.sh):
//   x86_64-w64-mingw32-g++-posix -O2 -std=c++17 -DASIO_STANDALONE -D_WIN32_WINNT=0x0601
//     -isystem DIR asio_echo.cpp -o asio_echo.exe -static -lws2_32 -lmswsock
// where DIR holds only asio.hpp and asio/ (links to the libasio-dev headers in /usr/include:
// the whole /usr/include would mix glibc headers into a Windows build).
// Run: asio_echo.exe [--port P] [--threads N] [--buffer-size B] [--accepts K] [--address A]
// Prints "asio-echo: listening on ADDRESS:PORT ..." once ready (stdout, flushed).

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif

#include <asio.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#ifdef _WIN32
#include <windows.h>
#endif

using asio::ip::tcp;

namespace
{

class session : public std::enable_shared_from_this<session>
{
  public:
    session(tcp::socket socket, std::size_t buffer_size)
        : socket_(std::move(socket)), data_(buffer_size)
    {
    }

    void start()
    {
        do_read();
    }

  private:
    void do_read()
    {
        auto self(shared_from_this());
        socket_.async_read_some(asio::buffer(data_),
                                [this, self](std::error_code ec, std::size_t length) {
                                    if (!ec)
                                        do_write(length);
                                });
    }

    void do_write(std::size_t length)
    {
        auto self(shared_from_this());
        asio::async_write(socket_, asio::buffer(data_.data(), length),
                          [this, self](std::error_code ec, std::size_t /*length*/) {
                              if (!ec)
                                  do_read();
                          });
    }

    tcp::socket socket_;
    std::vector<char> data_;
};

class server
{
  public:
    server(asio::io_context &io, const tcp::endpoint &endpoint, std::size_t buffer_size)
        : io_(io), strand_(asio::make_strand(io)), acceptor_(strand_), buffer_size_(buffer_size)
    {
        acceptor_.open(endpoint.protocol());
        // Windows: SO_EXCLUSIVEADDRUSE, so that no one else can take the port (asio's
        // reuse_address would set SO_REUSEADDR, which on Windows allows port stealing).
#ifdef _WIN32
        BOOL on = TRUE;
        ::setsockopt(acceptor_.native_handle(), SOL_SOCKET, SO_EXCLUSIVEADDRUSE,
                     reinterpret_cast<const char *>(&on), sizeof on);
#endif
        acceptor_.bind(endpoint);
        acceptor_.listen(asio::socket_base::max_listen_connections);
    }

    unsigned short port() const
    {
        return acceptor_.local_endpoint().port();
    }

    std::string address() const
    {
        return acceptor_.local_endpoint().address().to_string();
    }

    // Keeps `count` accepts outstanding; each completion starts its replacement.
    void start(int count)
    {
        asio::dispatch(strand_, [this, count] {
            for (int i = 0; i < count; i++)
                do_accept();
        });
    }

    // Closes the listener from its strand: pending accepts complete with operation_aborted.
    void stop()
    {
        asio::dispatch(strand_, [this] {
            std::error_code ignored;
            acceptor_.close(ignored);
        });
    }

  private:
    void do_accept()
    {
        // The new socket belongs to the io_context, not to the strand: sessions run on any
        // thread, one handler at a time each (a session has one operation in flight).
        acceptor_.async_accept(
            io_, asio::bind_executor(strand_, [this](std::error_code ec, tcp::socket socket) {
                if (!acceptor_.is_open())
                    return;
                if (!ec) {
                    std::error_code ignored;
                    socket.set_option(tcp::no_delay(true), ignored);
                    std::make_shared<session>(std::move(socket), buffer_size_)->start();
                }
                // Resource errors (e.g. out of sockets) must not end the
                // accept loop: keep the same number outstanding.
                do_accept();
            }));
    }

    asio::io_context &io_;
    asio::strand<asio::io_context::executor_type> strand_;
    tcp::acceptor acceptor_;
    std::size_t buffer_size_;
};

// The stop request, from the console control handler (its own thread) or a signal.
asio::io_context *g_io = nullptr;
server *g_server = nullptr;
std::atomic<bool> g_stopping{false};

void request_stop()
{
    if (g_stopping.exchange(true))
        return;
    if (g_server)
        g_server->stop();
    // Let the listener close first, then stop: remaining handlers (the sessions) are destroyed
    // with the io_context, which closes their sockets.
    if (g_io)
        asio::post(*g_io, [] { g_io->stop(); });
}

#ifdef _WIN32
HANDLE g_stopped_event = nullptr;

BOOL WINAPI console_handler(DWORD type)
{
    request_stop();
    // For close/logoff/shutdown the process ends when this handler returns: wait (bounded)
    // until main has shut down cleanly.
    if (type == CTRL_CLOSE_EVENT || type == CTRL_LOGOFF_EVENT || type == CTRL_SHUTDOWN_EVENT)
        WaitForSingleObject(g_stopped_event, 4000);
    return TRUE;
}

LONG WINAPI crash_filter(EXCEPTION_POINTERS *info)
{
    // Under Wine a crash can exit with code 0: make it a non-zero exit, always.
    std::fprintf(stderr, "asio-echo: unhandled exception 0x%08lx\n",
                 static_cast<unsigned long>(info->ExceptionRecord->ExceptionCode));
    std::fflush(stderr);
    TerminateProcess(GetCurrentProcess(), 3);
    return EXCEPTION_EXECUTE_HANDLER;
}
#endif

[[noreturn]] void usage(const char *why)
{
    std::fprintf(stderr,
                 "asio-echo: %s\n"
                 "usage: asio_echo [--port P] [--threads N] [--buffer-size BYTES] "
                 "[--accepts K] [--address A]\n",
                 why);
    std::exit(2);
}

long parse_number(const char *name, const char *text, long lo, long hi)
{
    char *end = nullptr;
    long v = std::strtol(text, &end, 10);
    if (!*text || *end || v < lo || v > hi) {
        std::string why = std::string("bad value for ") + name + ": " + text;
        usage(why.c_str());
    }
    return v;
}

} // namespace

int main(int argc, char **argv)
{
#ifdef _WIN32
    SetUnhandledExceptionFilter(crash_filter);
#endif
    unsigned hw = std::thread::hardware_concurrency();
    long threads = hw ? static_cast<long>(hw) : 2;
    long buffer_size = 16384;
    long port = 0;
    long accepts = 16;
    std::string address = "127.0.0.1";

    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto value = [&](void) -> const char * {
            if (i + 1 >= argc)
                usage(("missing value for " + a).c_str());
            return argv[++i];
        };
        if (a == "--port")
            port = parse_number("--port", value(), 0, 65535);
        else if (a == "--threads")
            threads = parse_number("--threads", value(), 1, 1024);
        else if (a == "--buffer-size")
            buffer_size = parse_number("--buffer-size", value(), 1, 64L * 1024 * 1024);
        else if (a == "--accepts")
            accepts = parse_number("--accepts", value(), 1, 1024);
        else if (a == "--address")
            address = value();
        else if (a == "--help" || a == "-h")
            usage("help");
        else
            usage(("unknown option " + a).c_str());
    }

    try {
        asio::io_context io(static_cast<int>(threads));
        std::error_code ec;
        auto addr = asio::ip::make_address(address, ec);
        if (ec)
            usage(("bad address " + address).c_str());
        server srv(io, tcp::endpoint(addr, static_cast<unsigned short>(port)),
                   static_cast<std::size_t>(buffer_size));
        g_io = &io;
        g_server = &srv;

#ifdef _WIN32
        g_stopped_event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
        SetConsoleCtrlHandler(console_handler, TRUE);
#endif
        // Keeps run() from returning while the server is momentarily without work.
        auto guard = asio::make_work_guard(io);
        srv.start(static_cast<int>(accepts));

        std::vector<std::thread> pool;
        pool.reserve(static_cast<std::size_t>(threads));
        for (long t = 0; t < threads; t++)
            pool.emplace_back([&io] { io.run(); });

        std::string shown = srv.address();
        if (shown.find(':') != std::string::npos)
            shown = "[" + shown + "]";
        std::printf("asio-echo: listening on %s:%u (threads %ld, buffer %ld, accepts %ld, "
                    "asio %d.%d.%d)\n",
                    shown.c_str(), static_cast<unsigned>(srv.port()), threads, buffer_size, accepts,
                    ASIO_VERSION / 100000, ASIO_VERSION / 100 % 1000, ASIO_VERSION % 100);
        std::fflush(stdout);

        for (auto &t : pool)
            t.join();
        g_server = nullptr;
        g_io = nullptr;
        // io and its pending handlers (with the sessions they own) are destroyed here,
        // closing every connection's socket.
    } catch (const std::exception &e) {
        std::fprintf(stderr, "asio-echo: %s\n", e.what());
        return 1;
    }

    std::printf("asio-echo: stopped\n");
    std::fflush(stdout);
#ifdef _WIN32
    if (g_stopped_event)
        SetEvent(g_stopped_event);
#endif
    return 0;
}
