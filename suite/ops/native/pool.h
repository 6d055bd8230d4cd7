/* Running a kernel on PyTorch's own thread pool: pool_run hands a kernel to the torch extension's suite_pool_run
 * (kernels.cpp), which runs it as `n_threads` team members through ATen's at::parallel_for, one member per thread of
 * PyTorch's pool (several in turn on one thread when the pool is smaller). So these kernels and PyTorch's CPU ops
 * share one pool and never compete for cores. Members never wait for each other: a kernel with two phases runs two
 * pool_run calls. */
#ifndef SUITE_POOL_H
#define SUITE_POOL_H

typedef struct {
    int n_threads; /* team members: each gets an equal share of the work and its own scratch and partial sums */
} pool;

/* The calling member's index in [0, n_threads) (0 when serial); set by suite_pool_run. */
int suite_pool_self(void);

/* fn(data) once per member, members in parallel on PyTorch's pool. */
void suite_pool_run(int n_threads, void (*fn)(void *), void *data);

static inline int pool_self(const pool *p) { return p->n_threads > 1 ? suite_pool_self() : 0; }

/* The share [begin, end) of n items that the calling member takes. */
static inline void pool_share(const pool *p, long n, long *begin, long *end) {
    const int team = p->n_threads > 1 ? p->n_threads : 1, self = pool_self(p);
    *begin = n * self / team;
    *end = n * (self + 1) / team;
}

static inline void pool_run(pool *p, void (*fn)(void *), void *data) { suite_pool_run(p->n_threads, fn, data); }

#endif
