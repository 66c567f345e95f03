/* The physical floor: keep max_jobs children running with posix_spawn + waitpid.
 * usage: floor MAX_JOBS COUNT PROGRAM [ARGS...]   (exit status 1 if any child failed) */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: floor MAX_JOBS COUNT PROGRAM [ARGS...]\n");
        return 2;
    }
    long max_jobs = atol(argv[1]), count = atol(argv[2]);
    long started = 0, running = 0, failed = 0;
    while (started < count || running > 0) {
        while (running < max_jobs && started < count) {
            pid_t pid;
            if (posix_spawnp(&pid, argv[3], NULL, NULL, &argv[3], environ) != 0) {
                perror("posix_spawnp");
                return 2;
            }
            started++;
            running++;
        }
        int status;
        if (wait(&status) < 0) {
            perror("wait");
            return 2;
        }
        running--;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
    }
    return failed ? 1 : 0;
}
