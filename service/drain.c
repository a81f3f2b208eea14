/*
 * drain.c: `iocp-service drain`: tells the running instance of a name to stop as a stop
 * does, for an instance in a console (`run`) as well as a service: /readyz answers 503 at
 * once, the listener keeps accepting for --unready-delay seconds so that a load balancer
 * takes the instance out of rotation first, then the drain closes the listener and lets open
 * connections finish. The request goes through the status pipe, whose DACL admits only the
 * instance's own account, administrators and SYSTEM, and whose answer counts only from the
 * instance itself (svc_instance_ask): nothing on the network can start a drain.
 */
#include "svc.h"

int svc_drain(const svc_options *opt)
{
    svc_status_info info;
    char err[300];
    if (svc_instance_ask(opt->name, "DRAIN", 5000, &info, err, sizeof err) != 0) {
        fprintf(stderr, "iocp-service: cannot ask instance '%s' to drain: %s\n", opt->name, err);
        return SVC_EXIT_NOT_RUNNING;
    }
    printf("instance '%s' (%s, pid %lu) is draining\n", opt->name, info.mode,
           (unsigned long)info.pid);
    return SVC_EXIT_OK;
}
