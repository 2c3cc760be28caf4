/* test_progress.c — progress lines (progress.h): the format with percentage, rate and ETA; unknown totals;
 * in a log (not a terminal) plain lines only at the interval and at the end, never a carriage return. */
#include "progress.h"
#include "test.h"

#include <stdlib.h>

int main(void) {
    seslm_progress p;
    char line[320];
    seslm_progress_init(&p, NULL, "seslm x: calibration", "texts", 200);
    p.done = 50;
    seslm_progress_format(&p, p.t0 + 10.0, line, sizeof line); // 5 texts/s: 150 left -> 30 s
    CHECK_MSG(strstr(line, "seslm x: calibration 50/200 texts (25%)") && strstr(line, "5.0 texts/s") &&
                  strstr(line, "10 s elapsed") && strstr(line, "ETA 30 s"),
              "%s", line);
    p.done = 200;
    seslm_progress_format(&p, p.t0 + 125.0, line, sizeof line);
    CHECK_MSG(strstr(line, "(100%)") && strstr(line, "2m05s elapsed") && !strstr(line, "ETA"), "%s", line);
    seslm_progress_init(&p, NULL, "seslm y", "inputs", 0); // unknown total: no percentage, no ETA
    p.done = 7;
    seslm_progress_format(&p, p.t0 + 1.0, line, sizeof line);
    CHECK_MSG(strstr(line, "seslm y 7 inputs, 7.0 inputs/s") && !strstr(line, "%") && !strstr(line, "ETA"), "%s", line);

    // a log file: with a 1-hour interval, 1000 updates print nothing until the final line
    setenv("SESLM_PROGRESS_SECONDS", "3600", 1);
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (!f) return test_report("test_progress");
    seslm_progress_init(&p, f, "seslm z", "steps", 1000);
    CHECK(!p.tty);
    for (int i = 1; i <= 1000; i++) seslm_progress_update(&p, i);
    seslm_progress_finish(&p);
    rewind(f);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += buf[i] == '\n';
    CHECK_MSG(lines == 1 && !strchr(buf, '\r') && strstr(buf, "seslm z 1000/1000 steps (100%)"), "log: [%s]", buf);
    fclose(f);
    setenv("SESLM_PROGRESS", "0", 1); // silenced
    f = tmpfile();
    seslm_progress_init(&p, f, "seslm q", "", 10);
    seslm_progress_update(&p, 10);
    seslm_progress_finish(&p);
    CHECK(f && ftell(f) == 0);
    if (f) fclose(f);
    return test_report("test_progress");
}
