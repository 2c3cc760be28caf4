/* embed_hello.c — a program that uses only the installed core: prints the embedding of argv[2]. */
#include <seslm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    seslm_model *m = NULL;
    seslm_encoder *e = NULL;
    if (argc != 3 || seslm_model_load(&m, argv[1]) || seslm_encoder_new(&e, m, &(seslm_encoder_opts){.max_batch = 1}))
        return fprintf(stderr, "embed_hello: %s\n", argc == 3 ? seslm_last_error() : "usage: MODEL_DIR TEXT"), 1;
    int C = seslm_model_get_config(m)->hidden;
    float *v = malloc(sizeof *v * C);
    const char *texts[] = {argv[2]};
    size_t lens[] = {strlen(argv[2])};
    if (!v || seslm_encoder_embed_texts(e, texts, lens, 1, v)) return fprintf(stderr, "%s\n", seslm_last_error()), 1;
    for (int i = 0; i < C; i++) printf("%.9g%c", v[i], i + 1 < C ? ' ' : '\n');
    free(v), seslm_encoder_free(e), seslm_model_free(m);
    return 0;
}
