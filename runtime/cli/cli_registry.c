/* cli_registry.c — shared pieces of the registry commands (cli_registry.h). */
#include "cli.h"
#include "cli_registry.h"
#include "model_crypt.h"

#include <openssl/crypto.h>
#include "util.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *cli_registry_url(const char *flag) {
    if (flag && flag[0]) return flag;
    const char *e = getenv("SESLM_REGISTRY");
    if (e && e[0]) return e;
    mkdir("runs", 0755); // the default lives in runs/; an error shows when the file cannot be opened
    return "runs/registry.db";
}

const char *cli_audit_head_file(const char *key_file, char *buf, size_t cap) {
    const char *e = getenv("SESLM_AUDIT_HEAD_FILE");
    if (e && e[0]) return e;
    snprintf(buf, cap, "%s.head", key_file);
    return buf;
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
        // the log's head, kept beside the key (outside the database) so a removed tail is caught
        char head[4096];
        if (seslm_registry_set_audit_head_file(r, cli_audit_head_file(kf, head, sizeof head)) != SESLM_OK) {
            cli_error(cmd, "%s", seslm_last_error());
            seslm_registry_close(r);
            return NULL;
        }
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

/* libcurl write callback: keeps the first bytes of the answer (the error message of a refused reload) */
typedef struct {
    char buf[512];
    size_t n;
} notify_reply;

static size_t notify_keep(char *data, size_t size, size_t nmemb, void *user) {
    notify_reply *r = user;
    size_t len = size * nmemb, room = sizeof r->buf - 1 - r->n;
    memcpy(r->buf + r->n, data, len < room ? len : room);
    r->n += len < room ? len : room;
    r->buf[r->n] = 0;
    return len;
}

int cli_notify_reload(const char *url, const char *model_dir, const char *token_file, char *why, size_t cap) {
    // POST {"model": DIR} to http://HOST:PORT/admin/reload through libcurl (the admin endpoint is served
    // to loopback only, so plain HTTP; the token, when there is one, goes as a bearer token)
    if (strncmp(url, "http://", 7) != 0) {
        snprintf(why, cap, "--notify %s: only http://HOST:PORT is supported", url);
        return 1;
    }
    const char *h = url + 7;
    size_t hl = strcspn(h, "/");
    if (hl == 0 || h[0] == ':' || hl > 300) { // (a path after HOST:PORT is ignored, as before)
        snprintf(why, cap, "--notify %s: expected http://HOST:PORT", url);
        return 1;
    }
    char endpoint[400];
    snprintf(endpoint, sizeof endpoint, "http://%.*s/admin/reload", (int)hl, h);
    char tok[1024];
    if (!read_token(token_file, tok, sizeof tok, why, cap)) return 1;
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "model", model_dir);
    char *body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    CURL *c = curl_easy_init();
    if (!body || !c) {
        snprintf(why, cap, "out of memory");
        free(body);
        if (c) curl_easy_cleanup(c);
        return 1;
    }
    char auth[1100];
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (tok[0]) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
        hdrs = curl_slist_append(hdrs, auth);
    }
    notify_reply reply = {.n = 0};
    char err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, endpoint);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, notify_keep);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L); // a reload loads and warms a model: allow it minutes
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    free(body);
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) {
        snprintf(why, cap, "cannot connect to %s: %s", url, err[0] ? err : curl_easy_strerror(rc));
        return 1;
    }
    if (rc != CURLE_OK || status == 0) {
        snprintf(why, cap, "%s: no HTTP reply (%s)", url, err[0] ? err : curl_easy_strerror(rc));
        return 1;
    }
    if (status != 200) {
        snprintf(why, cap, "%s/admin/reload answered HTTP %ld: %.300s", url, status, reply.buf);
        size_t l = strlen(why);
        while (l && (why[l - 1] == '\n' || why[l - 1] == '\r')) why[--l] = 0;
        return 1;
    }
    return 0;
}
