/*
 * recovery.c: what the SCM does when the service fails. A failure is not a day's outage: the
 * service is restarted on every failure, soon at first and then once a minute, and the count
 * of failures is forgotten once it has stayed up for an hour:
 *
 *   1st failure: restart after the first delay (--restart-delay, default 1 s)
 *   2nd failure: after 5 s      3rd: after 30 s      4th and every later one: after 60 s
 *   (never sooner than the first delay)
 *
 * A quick first restart keeps a rare crash (an assertion: design.md) to seconds of outage;
 * the growing delay keeps a service that fails at once on every start (a port another
 * program holds, a parameter that is wrong) from spinning, while it still comes back by
 * itself within a minute of the cause going away. The SCM repeats the last action for every
 * failure past the array's end, so there is no "then give up". Install also sets
 * FailureActionsOnNonCrashFailures: a stop reported with an exit code (the port was taken at
 * boot) counts as a failure, not only a process that ended without reporting SERVICE_STOPPED.
 */
#include "svc.h"

/* The delays after the first, in seconds; the last one repeats. */
static const DWORD later_delays_s[SVC_FAILURE_STEPS - 1] = {5, 30, 60};

void svc_failure_schedule(uint32_t first_delay_s, SC_ACTION actions[SVC_FAILURE_STEPS],
                          SERVICE_FAILURE_ACTIONSW *out)
{
    actions[0].Type = SC_ACTION_RESTART;
    actions[0].Delay = first_delay_s * 1000u;
    for (int i = 1; i < SVC_FAILURE_STEPS; i++) {
        DWORD s = later_delays_s[i - 1] > first_delay_s ? later_delays_s[i - 1] : first_delay_s;
        actions[i].Type = SC_ACTION_RESTART;
        actions[i].Delay = s * 1000u;
    }
    out->dwResetPeriod = SVC_FAILURE_RESET_S;
    out->lpRebootMsg = NULL;
    out->lpCommand = NULL;
    out->cActions = SVC_FAILURE_STEPS;
    out->lpsaActions = actions;
}

void svc_failure_text(const SERVICE_FAILURE_ACTIONSW *fa, char *out, size_t size)
{
    size_t len = 0;
    int k = snprintf(out, size, "failure actions (restart after ");
    len = k > 0 ? (size_t)k : 0;
    for (DWORD i = 0; i < fa->cActions && len < size; i++) {
        k = snprintf(out + len, size - len, "%s%lu s", i == 0 ? "" : ", ",
                     (unsigned long)(fa->lpsaActions[i].Delay / 1000u));
        len += k > 0 ? (size_t)k : 0;
    }
    if (len < size)
        snprintf(out + len, size - len,
                 ", then %lu s after every later failure; the count restarts after %lu min "
                 "without one)",
                 (unsigned long)(fa->lpsaActions[fa->cActions - 1].Delay / 1000u),
                 (unsigned long)(fa->dwResetPeriod / 60u));
}
