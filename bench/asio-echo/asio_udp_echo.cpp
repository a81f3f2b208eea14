// asio_udp_echo.cpp: the reference peer for bench/'s udp workload: a standalone-asio UDP echo
// server for Windows, written like asio's own example async_udp_echo_server.cpp
// (asio/src/examples/cpp11/echo/), so that the comparison measures the engines and not a
// handicapped opponent.
//
//   - one udp::socket, one buffer and one sender endpoint per receive chain;
//   - async_receive_from into the buffer; a datagram is sent back whole with async_send_to to
//     its sender; when that send completes, receive again (a failed or empty receive: receive
//     again at once). This is the example's loop, unchanged;
//   - one io_context (on Windows: one I/O completion port) run by N threads (--threads), as
//     the TCP asio server does;
//   - --receives K: K such chains on the one socket (K receives outstanding). The example has
//     one, and the default is 1: with one chain at most one handler runs at a time, whatever
//     N is, which is the model the example teaches. K > 1 is an experiment beyond the example
//     (each chain is still the example's loop, with its own buffer and endpoint; the chains
//     share the socket, which asio allows for distinct operations);
//   - stops cleanly on Ctrl+C, Ctrl+Break and console close: closes the socket, stops the
//     io_context, joins the threads.
//
// Build (see bench/run.sh): as asio_echo.cpp:
//   x86_64-w64-mingw32-g++-posix -O2 -std=c++17 -DASIO_STANDALONE -D_WIN32_WINNT=0x0601
//     -isystem DIR asio_udp_echo.cpp -o asio_udp_echo.exe -static -lws2_32 -lmswsock
// Run: asio_udp_echo.exe [--port P] [--threads N] [--buffer-size B] [--receives K]
//      [--address A]
// Prints "asio-udp-echo: listening on ADDRESS:PORT ..." once ready (stdout, flushed).

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
#include <vector>

#ifdef _WIN32
#include <windows.h>
#endif

using asio::ip::udp;

namespace
{

// The example's `server`, less the socket (shared by the chains): one receive outstanding,
// then one send of what was received, then receive again.
class chain
{
  public:
    chain(udp::socket &socket, std::size_t buffer_size) : socket_(socket), data_(buffer_size)
    {
    }

    void do_receive()
    {
        socket_.async_receive_from(asio::buffer(data_), sender_endpoint_,
                                   [this](std::error_code ec, std::size_t bytes_recvd) {
                                       if (!ec && bytes_recvd > 0)
                                           do_send(bytes_recvd);
                                       else if (ec != asio::error::operation_aborted)
                                           do_receive();
                                   });
    }

  private:
    void do_send(std::size_t length)
    {
        socket_.async_send_to(asio::buffer(data_.data(), length), sender_endpoint_,
                              [this](std::error_code ec, std::size_t /*bytes_sent*/) {
                                  if (ec != asio::error::operation_aborted)
                                      do_receive();
                              });
    }

    udp::socket &socket_;
    udp::endpoint sender_endpoint_;
    std::vector<char> data_;
};

asio::io_context *g_io = nullptr;
udp::socket *g_socket = nullptr;
std::atomic<bool> g_stopping{false};

void request_stop()
{
    if (g_stopping.exchange(true))
        return;
    if (g_io) {
        // Close from inside the io_context (a socket is not thread-safe), then stop.
        asio::post(*g_io, [] {
            std::error_code ignored;
            if (g_socket)
                g_socket->close(ignored);
            g_io->stop();
        });
    }
}

#ifdef _WIN32
HANDLE g_stopped_event = nullptr;

BOOL WINAPI console_handler(DWORD type)
{
    request_stop();
    if (type == CTRL_CLOSE_EVENT || type == CTRL_LOGOFF_EVENT || type == CTRL_SHUTDOWN_EVENT)
        WaitForSingleObject(g_stopped_event, 4000);
    return TRUE;
}

LONG WINAPI crash_filter(EXCEPTION_POINTERS *info)
{
    // Under Wine a crash can exit with code 0: make it a non-zero exit, always.
    std::fprintf(stderr, "asio-udp-echo: unhandled exception 0x%08lx\n",
                 static_cast<unsigned long>(info->ExceptionRecord->ExceptionCode));
    std::fflush(stderr);
    TerminateProcess(GetCurrentProcess(), 3);
    return EXCEPTION_EXECUTE_HANDLER;
}
#endif

[[noreturn]] void usage(const char *why)
{
    std::fprintf(stderr,
                 "asio-udp-echo: %s\n"
                 "usage: asio_udp_echo [--port P] [--threads N] [--buffer-size BYTES] "
                 "[--receives K] [--address A]\n",
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
    long buffer_size = 65536; // the example's max_length is 1024; 64 KiB takes any datagram
    long port = 0;
    long receives = 1;
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
            buffer_size = parse_number("--buffer-size", value(), 1, 65536);
        else if (a == "--receives")
            receives = parse_number("--receives", value(), 1, 1024);
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
        udp::socket socket(io, udp::endpoint(addr, static_cast<unsigned short>(port)));
#ifdef _WIN32
        // Ours turns SIO_UDP_CONNRESET off too: otherwise an ICMP port-unreachable (an echo to
        // a client that has gone) fails the next receive. The example's loop survives that
        // anyway (it receives again on any error); this only spares the failed receives.
        {
            BOOL off = FALSE;
            DWORD bytes = 0;
            ::WSAIoctl(socket.native_handle(), _WSAIOW(IOC_VENDOR, 12) /* SIO_UDP_CONNRESET */,
                       &off, sizeof off, nullptr, 0, &bytes, nullptr, nullptr);
        }
#endif
        g_io = &io;
        g_socket = &socket;
#ifdef _WIN32
        g_stopped_event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
        SetConsoleCtrlHandler(console_handler, TRUE);
#endif
        auto guard = asio::make_work_guard(io);
        std::vector<std::unique_ptr<chain>> chains;
        for (long k = 0; k < receives; k++) {
            chains.push_back(std::make_unique<chain>(socket, static_cast<std::size_t>(buffer_size)));
            chains.back()->do_receive();
        }

        std::vector<std::thread> pool;
        pool.reserve(static_cast<std::size_t>(threads));
        for (long t = 0; t < threads; t++)
            pool.emplace_back([&io] { io.run(); });

        auto local = socket.local_endpoint();
        std::string shown = local.address().to_string();
        if (shown.find(':') != std::string::npos)
            shown = "[" + shown + "]";
        std::printf("asio-udp-echo: listening on %s:%u (udp, threads %ld, receives %ld, buffer %ld, "
                    "asio %d.%d.%d)\n",
                    shown.c_str(), static_cast<unsigned>(local.port()), threads, receives,
                    buffer_size, ASIO_VERSION / 100000, ASIO_VERSION / 100 % 1000,
                    ASIO_VERSION % 100);
        std::fflush(stdout);

        for (auto &t : pool)
            t.join();
        g_socket = nullptr;
        g_io = nullptr;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "asio-udp-echo: %s\n", e.what());
        return 1;
    }

    std::printf("asio-udp-echo: stopped\n");
    std::fflush(stdout);
#ifdef _WIN32
    if (g_stopped_event)
        SetEvent(g_stopped_event);
#endif
    return 0;
}
