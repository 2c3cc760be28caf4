/* cli_registry.c — shared pieces of the registry commands (cli_registry.h). */
#include "cli.h"
#include "cli_registry.h"
#include "model_crypt.h"

#include <openssl/crypto.h>
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

const char *cli_registry_url(const char *flag) {
    if (flag && flag[0]) return flag;
    const char *e = getenv("SESLM_REGISTRY");
    if (e && e[0]) return e;
    mkdir("runs", 0755); // the default lives in runs/; an error shows when the file cannot be opened
    return "runs/registry.db";
}

seslm_registry *cli_registry_open(const char *cmd, const char *flag) {
    seslm_registry *r = NULL;
    if (seslm_registry_open(&r, cli_registry_url(flag)) != SESLM_OK) {
        cli_error(cmd, "%s", seslm_last_error());
        return NULL;
    }
    // the audit log's anchor key: a private file the database never sees (docs/security.md)
    const char *kf = getenv("SESLM_AUDIT_KEY_FILE");
    if (kf && kf[0]) {
        unsigned char key[32];
        if (seslm_crypt_key_load(key, kf) != SESLM_OK) {
            cli_error(cmd, "$SESLM_AUDIT_KEY_FILE: %s", seslm_last_error());
            seslm_registry_close(r);
            return NULL;
        }
        seslm_registry_set_audit_key(r, key);
        OPENSSL_cleanse(key, sizeof key);
    }
    return r;
}

const char *cli_registry_actor(const char *flag, char *buf, size_t cap) {
    if (flag && flag[0]) return flag;
    const char *e = getenv("SESLM_ACTOR");
    if (e && e[0]) return e;
    struct passwd *pw = getpwuid(getuid());
    if (pw && pw->pw_name) snprintf(buf, cap, "%s", pw->pw_name);
    else snprintf(buf, cap, "uid:%u", (unsigned)getuid());
    return buf;
}

int cli_registry_policy(const char *cmd, const char *flag, seslm_governance *g) {
    const char *path = flag && flag[0] ? flag : getenv("SESLM_POLICY");
    struct stat st;
    if ((!path || !path[0]) && stat("configs/governance.yaml", &st) == 0) path = "configs/governance.yaml";
    if (!path || !path[0]) {
        seslm_governance_default(g);
        return 0;
    }
    if (seslm_governance_load(g, path) != SESLM_OK) {
        cli_error(cmd, "%s", seslm_last_error());
        return 1;
    }
    return 0;
}

void cli_print_json_text(char *json) {
    if (json) printf("%s\n", json);
    free(json);
}

static int read_token(const char *file, char *tok, size_t cap, char *why, size_t wcap) {
    tok[0] = 0;
    if (file && file[0]) {
        if (util_read_secret_line(file, "admin token", tok, cap) != SESLM_OK) {
            snprintf(why, wcap, "%s", seslm_last_error());
            return 0;
        }
    } else if (getenv("SESLM_ADMIN_TOKEN")) {
        snprintf(tok, cap, "%s", getenv("SESLM_ADMIN_TOKEN"));
    }
    return 1;
}

int cli_notify_reload(const char *url, const char *model_dir, const char *token_file, char *why, size_t cap) {
    // a plain HTTP/1.1 client for http://host:port: the admin endpoint is served to loopback only
    if (strncmp(url, "http://", 7) != 0) {
        snprintf(why, cap, "--notify %s: only http://HOST:PORT is supported", url);
        return 1;
    }
    char host[256], port[16] = "80";
    const char *h = url + 7, *end = h + strcspn(h, "/");
    const char *colon = memchr(h, ':', (size_t)(end - h));
    size_t hl = (size_t)((colon ? colon : end) - h);
    if (hl == 0 || hl >= sizeof host || (colon && (size_t)(end - colon - 1) >= sizeof port)) {
        snprintf(why, cap, "--notify %s: expected http://HOST:PORT", url);
        return 1;
    }
    memcpy(host, h, hl);
    host[hl] = 0;
    if (colon) {
        memcpy(port, colon + 1, (size_t)(end - colon - 1));
        port[end - colon - 1] = 0;
    }
    char tok[1024];
    if (!read_token(token_file, tok, sizeof tok, why, cap)) return 1;
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "model", model_dir);
    char *body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    if (!body) {
        snprintf(why, cap, "out of memory");
        return 1;
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        snprintf(why, cap, "%s: %s", url, gai_strerror(rc));
        free(body);
        return 1;
    }
    int fd = -1;
    for (struct addrinfo *p = ai; p && fd < 0; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype, p->ai_protocol);
        if (fd < 0) continue;
        struct timeval tv = {300, 0}; // a reload loads and warms a model: allow it minutes
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, p->ai_addr, p->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        snprintf(why, cap, "cannot connect to %s: %s", url, strerror(errno));
        free(body);
        return 1;
    }
    char req[4096];
    int n = snprintf(req, sizeof req,
                     "POST /admin/reload HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n%s%s%s\r\n",
                     host, port, strlen(body), tok[0] ? "Authorization: Bearer " : "", tok, tok[0] ? "\r\n" : "");
    int ok = n > 0 && (size_t)n < sizeof req && write(fd, req, (size_t)n) == n &&
             write(fd, body, strlen(body)) == (ssize_t)strlen(body);
    free(body);
    char resp[8192];
    size_t got = 0;
    while (ok && got + 1 < sizeof resp) {
        ssize_t k = read(fd, resp + got, sizeof resp - 1 - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fd);
    resp[got] = 0;
    int status = 0;
    if (!ok || sscanf(resp, "HTTP/1.%*d %d", &status) != 1) {
        snprintf(why, cap, "%s: no HTTP reply", url);
        return 1;
    }
    if (status != 200) {
        const char *msg = strstr(resp, "\r\n\r\n");
        snprintf(why, cap, "%s/admin/reload answered HTTP %d: %.300s", url, status, msg ? msg + 4 : "");
        size_t l = strlen(why);
        while (l && (why[l - 1] == '\n' || why[l - 1] == '\r')) why[--l] = 0;
        return 1;
    }
    return 0;
}
