/* cli_model.h — pieces shared by the generate, chat and bench commands:
 * resolving the model path (the -m argument, $MLXN_MODEL, or the default
 * SmolLM2-135M-Instruct fetched once by scripts/fetch_default_model.sh),
 * opening the device, loading model + tokenizer with a timing, number
 * parsing with range checks, and the memory summary line. */
#ifndef MLXN_CLI_MODEL_H
#define MLXN_CLI_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "mlxn.h"
#include "model/model.h"
#include "model/tokenizer.h"

#define MLXN_DEFAULT_MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"

typedef struct cli_loaded {
    mlxn_device *dev;
    mlxn_model *model;
    mlxn_tokenizer *tok;  /* NULL when not asked for */
    double load_s;
    char path[4096];
} cli_loaded;

/* Resolve the model path into out (cap bytes). Returns 0 on success; prints
 * the reason and returns nonzero otherwise. */
int cli_resolve_model(const char *arg, char *out, size_t cap);
/* Open device + load model (+ tokenizer if want_tok). Prints errors; 0 on success. */
int cli_load(const char *model_arg, const char *device, int threads, int want_tok, int verbose, cli_loaded *out);
void cli_unload(cli_loaded *l);
/* "12.3 MiB" */
const char *cli_fmt_bytes(double bytes, char *buf, size_t cap);
/* Peak resident set size of the process in bytes (0 if unknown). */
size_t cli_peak_rss(void);
/* Strict numeric parsing: returns 0 and prints "<flag>: ..." on failure. */
int cli_parse_int(const char *flag, const char *s, long lo, long hi, int *out);
int cli_parse_float(const char *flag, const char *s, double lo, double hi, float *out);
int cli_parse_u64(const char *flag, const char *s, uint64_t *out);
/* Read a whole file / stdin into a malloc'd NUL-terminated string (NULL + message on failure). */
char *cli_read_file(const char *path, size_t *len);

#endif
