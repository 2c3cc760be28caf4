/* sd_notify.c — the NOTIFY_SOCKET protocol (sd_notify.h): a path, or "@name" for Linux's abstract
 * namespace (the leading '@' becomes a NUL byte). */
#include "sd_notify.h"

#include "seslm.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int seslm_sd_notify(const char *state) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path) return 0;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof addr.sun_path) {
        seslm_fail(SESLM_ERR_ARG, "NOTIFY_SOCKET '%s' is not an absolute path or @abstract name", path);
        return -1;
    }
    memcpy(addr.sun_path, path, n);
    if (path[0] == '@') addr.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        seslm_fail(SESLM_ERR_IO, "notify socket: %s", strerror(errno));
        return -1;
    }
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    ssize_t sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr, len);
    int err = errno;
    close(fd);
    if (sent < 0) {
        seslm_fail(SESLM_ERR_IO, "notify %s: %s", path, strerror(err));
        return -1;
    }
    return 1;
}
