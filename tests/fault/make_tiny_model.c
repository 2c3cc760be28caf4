/* make_tiny_model.c — writes the tiny random BERT model of tests/tiny_model.h into a directory, for the
 * fault-injection driver (tests/fault/run_faults.sh), whose hundreds of runs cannot afford the real model.
 *
 *   make_tiny_model DIR [SEED] */
#include "tiny_model.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: make_tiny_model DIR [SEED]\n");
        return 2;
    }
    static tm_model m;
    tm_init(&m, argc > 2 ? strtoull(argv[2], NULL, 10) : 1);
    mkdir(argv[1], 0755);
    return tm_write(&m, argv[1], NULL) ? 0 : 1;
}
