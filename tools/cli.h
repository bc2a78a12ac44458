/* cli.h — subcommands of the mlxn command-line tool. tools/mlxn_main.c
 * dispatches `mlxn <cmd> ...` to these; each returns the process exit code
 * and prints its own --help. The CLI (unlike the library) may print and exit. */
#ifndef MLXN_CLI_H
#define MLXN_CLI_H

int mlxn_cmd_generate(int argc, char **argv);
int mlxn_cmd_chat(int argc, char **argv);
int mlxn_cmd_bench(int argc, char **argv);
int mlxn_cmd_inspect(int argc, char **argv);
int mlxn_cmd_convert(int argc, char **argv);

#endif
