/* Running a kernel on PyTorch's OpenMP thread pool without linking OpenMP: the caller passes libgomp's
 * GOMP_parallel, omp_get_thread_num and omp_get_num_threads taken from the libgomp PyTorch loaded (so these kernels
 * and PyTorch's own CPU ops share one pool and never compete for cores), or NULLs for a serial run. */
#ifndef SUITE_POOL_H
#define SUITE_POOL_H

typedef void (*gomp_parallel_fn)(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
typedef int (*thread_query_fn)(void);

typedef struct {
    gomp_parallel_fn parallel;
    thread_query_fn thread_num, num_threads;
    int n_threads;
} pool;

/* Thread index within the running team (0 when serial). */
static inline int pool_self(const pool *p) { return p->parallel && p->thread_num ? p->thread_num() : 0; }

/* The share [begin, end) of n items that the calling thread takes (the team may be smaller than asked for). */
static inline void pool_share(const pool *p, long n, long *begin, long *end) {
    const int team = p->parallel && p->num_threads ? p->num_threads() : 1, self = pool_self(p);
    *begin = n * self / team;
    *end = n * (self + 1) / team;
}

/* fn(data) on n_threads threads of the pool, or once on this thread. */
static inline void pool_run(pool *p, void (*fn)(void *), void *data) {
    if (p->parallel && p->n_threads > 1) {
        p->parallel(fn, data, (unsigned)p->n_threads, 0);
    } else {
        p->parallel = 0;
        fn(data);
    }
}

#endif
