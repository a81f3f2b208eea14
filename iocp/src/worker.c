/*
 * worker.c: the worker threads. Each drains the completion port in batches and calls each
 * op's done; between polls it gives turns to the ops that finished at once (its round-robin
 * list) and then runs what waits for the end of a round. It knows ops, not connections.
 *
 * One iteration, in this order (the order matters):
 *   1. wait for the port, or only poll it while turns are waiting (never sleep on work);
 *   2. run every packet of the batch: done(op, bytes, error); an exit packet is counted;
 *   3. run the after-round list: the next receives of the connections just handled, posted
 *      now so that their peers' answers are likely already there;
 *   4. give turns, round after round, up to a budget, each round followed by step 3;
 *   5. on an exit packet, finish every turn left, pass extra exit packets on, and return.
 */
#include "iocpi.h"

static DWORD tls_worker = TLS_OUT_OF_INDEXES;
static INIT_ONCE tls_once = INIT_ONCE_STATIC_INIT;

static BOOL CALLBACK tls_init(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    (void)once;
    (void)param;
    (void)ctx;
    tls_worker = TlsAlloc();
    return tls_worker != TLS_OUT_OF_INDEXES;
}

/* Once per process, before the first engine starts its workers. */
void iocpi_workers_prepare(void)
{
    InitOnceExecuteOnce(&tls_once, tls_init, NULL, NULL);
}

int iocpi_on_worker(void)
{
    return tls_worker != TLS_OUT_OF_INDEXES && TlsGetValue(tls_worker) != NULL;
}

#define BATCH 64
/* A worker that has at least this many connections waiting for their turn gives further
 * ones to the port while another worker sleeps in it: the sleeper wakes and takes them on.
 * Without a sleeper, a worker keeps all its ready connections: handing them to the port
 * costs a post and a dequeue per echo and puts them behind everyone queued there, so the
 * connections kept in the list would get two turns for the others' one (measured: p99
 * twice the mean latency with 1,000 connections). */
#define READY_SHARE 8

/* A FIFO of ops linked through deferred_next (an op is in one at most). */
typedef struct op_queue {
    iocpi_op *head, *tail;
} op_queue;

static void queue_push(op_queue *q, iocpi_op *op)
{
    op->deferred_next = NULL;
    if (q->tail != NULL)
        q->tail->deferred_next = op;
    else
        q->head = op;
    q->tail = op;
}

static iocpi_op *queue_pop(op_queue *q)
{
    iocpi_op *op = q->head;
    if (op != NULL) {
        q->head = op->deferred_next;
        if (q->head == NULL)
            q->tail = NULL;
    }
    return op;
}

/* A worker's deferred work. `turns`: a round-robin list of ops that finished at once (with
 * FILE_SKIP_COMPLETION_PORT_ON_SUCCESS no packet comes for those: a receive whose data was
 * there). Each gets one turn per round, between polls of the port: a connection that always
 * has data cannot starve the others, and no extra system call is spent to be fair.
 * `after_round`: ops to run once the batch or round is over (the next receive of a handled
 * connection, see iocpi_defer_after_round). */
typedef struct worker_lists {
    op_queue turns;
    uint32_t turn_count;
    op_queue after_round;
} worker_lists;

static void defer_turn(iocp_engine *e, iocpi_op *op, DWORD bytes, uint32_t share_at)
{
    worker_lists *w = TlsGetValue(tls_worker);
    IOCPI_ASSERT(w != NULL);
    if (w->turn_count >= share_at && e->idle_workers > 0) {
        /* As if the op had completed pending: the sleeping worker gets it. */
        memset(&op->ov, 0, sizeof op->ov);
        InterlockedIncrement64(&e->counters.ops_in_flight);
        iocpi_post_packet(e, bytes, 0, &op->ov);
        return;
    }
    op->deferred_bytes = bytes;
    queue_push(&w->turns, op);
    w->turn_count++;
}

void iocpi_defer_turn(iocp_engine *e, iocpi_op *op, DWORD bytes)
{
    defer_turn(e, op, bytes, READY_SHARE);
}

void iocpi_defer_turn_spread(iocp_engine *e, iocpi_op *op, DWORD bytes)
{
    defer_turn(e, op, bytes, 1);
}

/* Used for the next receive of a handled connection: posted after the worker's batch or
 * round, not at once, because by then the peer has often answered the echo, so the receive
 * completes at once (three cheap calls under Wine) instead of going pending (an APC to this
 * thread, a completion packet, another wait). Alone on the worker, a connection waits for
 * nothing. */
void iocpi_defer_after_round(iocpi_op *op)
{
    worker_lists *w = TlsGetValue(tls_worker);
    IOCPI_ASSERT(w != NULL);
    queue_push(&w->after_round, op);
}

static void run_after_round(worker_lists *w)
{
    op_queue q = w->after_round;
    w->after_round.head = w->after_round.tail = NULL;
    iocpi_op *op;
    while ((op = queue_pop(&q)) != NULL)
        op->done(op, 0, 0);
}

/* Turns given between two polls of the port: round after round, one turn each, until none is
 * waiting or the budget is spent. A budget keeps a worker from ignoring the port's queue;
 * polling after every round would cost a system call per echo. */
#ifndef READY_BUDGET
#define READY_BUDGET 64
#endif

static void turn_rounds(worker_lists *w)
{
    uint32_t budget = READY_BUDGET;
    while (w->turn_count > 0 && budget > 0) {
        uint32_t n = w->turn_count < budget ? w->turn_count : budget;
        budget -= n;
        while (n-- > 0) {
            iocpi_op *op = queue_pop(&w->turns);
            w->turn_count--;
            op->done(op, op->deferred_bytes, 0);
        }
        run_after_round(w);
    }
}

DWORD WINAPI iocpi_worker_main(LPVOID arg)
{
    iocp_engine *e = arg;
    worker_lists lists = {{NULL, NULL}, 0, {NULL, NULL}};
    TlsSetValue(tls_worker, &lists);
    OVERLAPPED_ENTRY entries[BATCH];
    for (;;) {
        ULONG n = 0;
        /* With connections waiting for their turn, only poll the port. */
        DWORD wait = lists.turn_count > 0 ? 0 : INFINITE;
        if (wait == INFINITE)
            InterlockedIncrement(&e->idle_workers);
        BOOL got = GetQueuedCompletionStatusEx(e->port, entries, BATCH, &n, wait, FALSE);
        if (wait == INFINITE)
            InterlockedDecrement(&e->idle_workers);
        if (!got) {
            DWORD error = GetLastError();
            n = 0;
            if (error != WAIT_TIMEOUT) {
                iocpi_log(e, IOCP_LOG_ERROR, "GetQueuedCompletionStatusEx failed (Win32 %lu)",
                          (unsigned long)error);
                if (error == ERROR_ABANDONED_WAIT_0 || error == ERROR_INVALID_HANDLE)
                    return 1;
            }
        }
        /* One batch can hold several workers' exit packets: this worker takes one and
         * passes the others on, after finishing every real completion in the batch. */
        ULONG exits = 0;
        for (ULONG i = 0; i < n; i++) {
            if (entries[i].lpOverlapped == NULL) {
                if (entries[i].lpCompletionKey == IOCPI_EXIT_KEY)
                    exits++;
                continue;
            }
            iocpi_op *op = CONTAINING_RECORD(entries[i].lpOverlapped, iocpi_op, ov);
            InterlockedDecrement64(&e->counters.ops_in_flight);
            op->done(op, entries[i].dwNumberOfBytesTransferred, iocpi_op_error(&op->ov));
        }
        run_after_round(&lists);
        turn_rounds(&lists);
        if (exits > 0) {
            /* Exit packets come only once the engine is idle: nothing is left to run. */
            while (lists.turn_count > 0)
                turn_rounds(&lists);
            while (--exits > 0)
                iocpi_post_packet(e, 0, IOCPI_EXIT_KEY, NULL);
            return 0;
        }
    }
}
