/* api.h — the serving APIs that clients already speak, beside SE-SLM's own /v1/embed:
 *   OpenAI     POST /v1/embeddings, GET /v1/models[/{id}]                       (api_openai.c)
 *   TEI        POST /embed (and POST /), GET /info, GET /health                  (api_tei.c)
 *   KServe v2  GET /v2, /v2/health/live, /v2/health/ready, /v2/models/{m}[/ready],
 *              POST /v2/models/{m}/infer                                          (api_kserve.c)
 *   GET /openapi.json (OpenAPI 3.0 description of every endpoint)                 (openapi.c)
 * All embed through the batcher like /v1/embed (api_embed.c), with the model's prompt and pooling. */
#ifndef SESLM_SERVE_API_H
#define SESLM_SERVE_API_H

#include "serve_internal.h"

/* The route of url among these APIs, or R_OTHER. */
serve_route serve_api_route(const char *url);
/* Answers one request of route r (method "GET", "POST", ...); writes the body to out, its content type to
 * *ctype and the model id to model (SERVE_ID_CAP); returns the HTTP status. */
int serve_api_handle(seslm_server *s, serve_route r, const char *url, const char *method, const char *body,
                     size_t len, sbuf *out, const char **ctype, char *model);

// ---- shared by the API files ---------------------------------------------------------------------

typedef struct {
    const char *p;
    size_t len;
} serve_text;

/* Tokenizes one text as the model's sentence-transformers pipeline does: prompt first (NULL: the encoder's,
 * i.e. the model's default prompt). *n_full: the untruncated length. (Used by /v1/embed too.) */
seslm_status serve_tokenize(const serve_slot *slot, const char *prompt, const char *text, size_t len, int32_t *row,
                            int cap, int *n, int *n_full);

typedef struct {
    int code;      // 200, or the HTTP status of the failure
    int index;     // the input at fault (-1: none)
    char msg[640]; // why
} serve_embed_result;

/* Embeds n texts into out (n, slot->hidden). Over-long inputs: truncated when truncate, else 413 naming the
 * input, its length and the limit. *ntok: tokens run. Invalid UTF-8: 400. */
serve_embed_result serve_embed_texts(seslm_server *s, serve_slot *slot, const char *prompt, const serve_text *texts,
                                     int n, int truncate, float *out, int64_t *ntok);

/* 1 if name designates the slot's model: its full id ("dir@sha") or the part before '@'. */
int serve_api_model_matches(const serve_slot *slot, const char *name);
/* Ready to serve: a model is loaded and the server is not draining. */
int serve_api_ready(seslm_server *s);
const char *serve_openapi_json(void);

int serve_api_openai(seslm_server *s, const char *url, const char *method, const char *body, size_t len, sbuf *out,
                     char *model);
int serve_api_tei(seslm_server *s, const char *url, const char *method, const char *body, size_t len, sbuf *out,
                  char *model);
int serve_api_kserve(seslm_server *s, const char *url, const char *method, const char *body, size_t len, sbuf *out,
                     char *model);

#endif
