/*
 * Replay driver: main() for a fuzz target built without libFuzzer. Each argument is a file or a
 * directory; every regular file (directories: their entries in name order, dot files skipped,
 * not recursive) is read whole and fed once to LLVMFuzzerTestOneInput(). A failed property
 * aborts inside the target, so meson test reports the input that broke it (the driver names each
 * file on stderr before running it when AMXQ_FUZZ_VERBOSE is set, and always prints the count).
 * An empty directory or a missing path is an error: a corpus that vanished must not pass.
 */
#define _POSIX_C_SOURCE 200809L /* opendir, stat */

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

static int verbose;

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = (uint8_t *)malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            fprintf(stderr, "%s: out of memory\n", path);
            return -1;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        buf = (uint8_t *)realloc(buf, cap);
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        fprintf(stderr, "%s: read error\n", path);
        return -1;
    }
    if (verbose)
        fprintf(stderr, "replay %s (%zu bytes)\n", path, n);
    /* An exactly sized copy, as libFuzzer hands inputs over: over-reads hit ASan. */
    uint8_t *exact = (uint8_t *)malloc(n ? n : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static long run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return -1;
    }
    char **names = NULL;
    size_t count = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = (char **)realloc(names, cap * sizeof *names);
            if (!nn)
                break;
            names = nn;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        names[count] = (char *)malloc(len);
        if (!names[count])
            break;
        snprintf(names[count], len, "%s/%s", dir, e->d_name);
        count++;
    }
    closedir(d);
    if (count)
        qsort(names, count, sizeof *names, cmp_names);
    long ran = 0;
    for (size_t i = 0; i < count; i++) {
        struct stat sb;
        if (stat(names[i], &sb) == 0 && S_ISREG(sb.st_mode)) {
            if (run_file(names[i]) != 0)
                ran = -1;
            else if (ran >= 0)
                ran++;
        }
        free(names[i]);
    }
    free(names);
    return ran;
}

int main(int argc, char **argv)
{
    verbose = getenv("AMXQ_FUZZ_VERBOSE") != NULL;
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    long total = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            perror(argv[i]);
            return 1;
        }
        long ran = S_ISDIR(sb.st_mode) ? run_dir(argv[i]) : (run_file(argv[i]) == 0 ? 1 : -1);
        if (ran <= 0) {
            fprintf(stderr, "%s: %s\n", argv[i], ran == 0 ? "no inputs" : "could not read");
            return 1;
        }
        total += ran;
    }
    printf("replayed %ld inputs: all properties held\n", total);
    return 0;
}
