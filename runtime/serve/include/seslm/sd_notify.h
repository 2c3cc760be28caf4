/* sd_notify.h — readiness notification to a service manager (systemd's NOTIFY_SOCKET protocol: one
 * datagram of "KEY=VALUE\n" lines to the AF_UNIX socket named by $NOTIFY_SOCKET). No libsystemd needed. */
#ifndef SESLM_SD_NOTIFY_H
#define SESLM_SD_NOTIFY_H

/* Sends state (e.g. "READY=1\nSTATUS=serving") when $NOTIFY_SOCKET is set: 1 sent, 0 not under a
 * service manager (nothing to do), -1 the send failed (seslm_fail message set). */
int seslm_sd_notify(const char *state);

#endif
