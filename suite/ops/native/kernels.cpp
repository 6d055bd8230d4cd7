// The CPU kernels of the cpu-kernels backend as typed torch operators (torch.ops.suite_kernels.*), and the thread
// pool they run on.
//
// The kernels themselves are C (depthwise.c, recurrences.c, batchnorm_lif.c, gaussian.c, synaptic.c: compiled with
// the system C compiler, -O3 -march=native, and linked into this extension). Each operator checks its tensors
// (device, dtype, contiguity: a wrong one is a one-line RuntimeError naming the operator and the argument, never an
// out-of-bounds read) and calls its C entry point with their data. Outputs are preallocated by the Python wrappers
// (suite/ops/native/__init__.py) and marked mutable (Tensor(a!)) in the schemas.
//
// Threads: pool.h's suite_pool_run runs a kernel as n_threads team members through ATen's at::parallel_for, i.e. on
// PyTorch's own OpenMP pool (the extension is compiled with -fopenmp and links libgomp.so.1, which the dynamic loader
// resolves to the libgomp torch already loaded: one pool, tested in tests/test_backends.py).

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <cstdint>
#include <optional>

extern "C" {
#include "pool.h"

void suite_recurrence(int kind, int is_double, const void *in, const void *grad, void *out, void *out2, void *v,
                      double decay, double threshold, double scale, double half_alpha, long T, long N, long h_rows,
                      int n_threads);
int suite_vector_width(void);
long suite_scratch_floats(int T, int D, int front, int T_out, int backward);
int suite_weight_grad_rows(int D);
void suite_depthwise_forward(const float *x, const float *w, float *y, double *moments, float *scratch, int T, int B,
                             int C, int D, int front, int T_out, int n_threads);
void suite_depthwise_backward(const float *x, const float *g, const float *y, const float *bn,
                              const float *reversed_taps, float *dx, float *dw_partial, float *scratch, int T, int B,
                              int C, int D, int front, int T_out, int n_threads);
void suite_lif_delay_forward(const float *z, const float *keep, const float *channel, const float *w, float *y,
                             float *scratch, double decay, double threshold, int T, int B, int C, int D, int front,
                             int T_out, int n_threads);
void suite_lif_delay_backward(const float *z, const float *keep, const float *channel, const float *g,
                              const float *reversed_taps, float *dz, double *bn_partial, float *dw_partial,
                              float *scratch, const float *gamma, const double *mean, const double *invstd,
                              double *grad_gamma, double *grad_beta, double *work, float *rows, double decay,
                              double threshold, double scale, double half_alpha, int T, int B, int C, int D,
                              int front, int T_out, int n_threads);
long suite_bn_lif_scratch(long B, long C, long every);
void suite_bn_lif_forward(int is_double, const void *x, const void *gamma, const void *beta, const void *keep,
                          void *out, void *checkpoints, void *scratch, void *v, void *channel, double *mean,
                          double *var, double *work, double *partial, const double *moments, int stats_only,
                          double eps, double decay, double threshold, long T, long B, long C, long every,
                          int n_threads);
void suite_bn_lif_backward(int is_double, const void *x, const void *checkpoints, const void *forward_rows,
                           void *scratch, const void *grad_out, const void *keep, const void *gamma,
                           const double *mean, const double *invstd, void *grad_x, void *channel, double *grad_gamma,
                           double *grad_beta, double *work, double *partial, int defer_input_grad, double decay,
                           double threshold, double scale, double half_alpha, long T, long B, long C, long every,
                           int n_threads);
void suite_gaussian_taps(const float *pos, int C, int D, int Cp, double s, double eps, float *taps, int n_threads);
void suite_gaussian_position_grad(const float *pos, const float *taps, const float *partial, int n_partials,
                                  int rows, int C, int D, int Cp, double s, float *grad_pos);
int suite_window_tile(void);
int suite_window_max(void);
void suite_window_correlate(const float *src, const float *a, const int *start, float *dst, int n_dst, int n_src,
                            int W, int R_src, int T_out, int Bv, int n_threads);
void suite_window_tap_grad(const float *x, const float *gy, const int *start, float *ga, int n_dst, int n_src, int W,
                           int R_src, int T_out, int Bv, int R_g, int n_threads);
}

namespace {

thread_local int pool_member = 0;

using Tensor = at::Tensor;
using Optional = std::optional<at::Tensor>;

// The data of a contiguous CPU tensor of `type`, or a one-line error naming the operator and the argument.
template <typename T>
T *data(const Tensor &t, at::ScalarType type, const char *op, const char *name) {
    TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == type && t.is_contiguous(), "suite_kernels.", op, ": ", name,
                " must be a contiguous CPU ", c10::toString(type), " tensor, got ", c10::toString(t.scalar_type()),
                " on ", t.device(), t.is_contiguous() ? "" : " (not contiguous)");
    return static_cast<T *>(t.data_ptr());
}

template <typename T>
T *optional_data(const Optional &t, at::ScalarType type, const char *op, const char *name) {
    return t.has_value() ? data<T>(*t, type, op, name) : nullptr;
}

// float32 or float64: the precision of the kernels that take both.
at::ScalarType real_type(const Tensor &t, const char *op) {
    const auto type = t.scalar_type();
    TORCH_CHECK(type == at::kFloat || type == at::kDouble, "suite_kernels.", op, ": float32 or float64 input, got ",
                c10::toString(type));
    return type;
}

constexpr auto F32 = at::kFloat;
constexpr auto F64 = at::kDouble;
constexpr auto I32 = at::kInt;

void recurrence(int64_t kind, const Tensor &input, const Optional &grad, const Tensor &out, const Optional &out2,
                const Optional &v, double decay, double threshold, double scale, double half_alpha, int64_t T,
                int64_t N, int64_t h_rows, int64_t threads) {
    const char *op = "recurrence";
    TORCH_CHECK(kind >= 0 && kind < 4, "suite_kernels.recurrence: kind ", kind, " not in 0..3");
    const auto type = real_type(input, op);
    TORCH_CHECK(input.numel() == T * N, "suite_kernels.recurrence: input has ", input.numel(), " values, not T N = ",
                T * N);
    suite_recurrence(static_cast<int>(kind), type == F64, data<void>(input, type, op, "input"),
                     optional_data<void>(grad, type, op, "grad"), data<void>(out, type, op, "out"),
                     optional_data<void>(out2, type, op, "out2"), optional_data<void>(v, type, op, "v"), decay,
                     threshold, scale, half_alpha, T, N, h_rows, static_cast<int>(threads));
}

void depthwise_forward(const Tensor &x, const Tensor &w, const Tensor &y, const Optional &moments,
                       const Tensor &scratch, int64_t T, int64_t B, int64_t C, int64_t D, int64_t front,
                       int64_t T_out, int64_t threads) {
    const char *op = "depthwise_forward";
    suite_depthwise_forward(data<float>(x, F32, op, "x"), data<float>(w, F32, op, "w"), data<float>(y, F32, op, "y"),
                            optional_data<double>(moments, F64, op, "moments"),
                            data<float>(scratch, F32, op, "scratch"), T, B, C, D, front, T_out, threads);
}

void depthwise_backward(const Tensor &x, const Tensor &g, const Optional &y, const Optional &bn,
                        const Tensor &reversed_taps, const Optional &dx, const Optional &dw_partial,
                        const Tensor &scratch, int64_t T, int64_t B, int64_t C, int64_t D, int64_t front,
                        int64_t T_out, int64_t threads) {
    const char *op = "depthwise_backward";
    suite_depthwise_backward(data<float>(x, F32, op, "x"), data<float>(g, F32, op, "g"),
                             optional_data<float>(y, F32, op, "y"), optional_data<float>(bn, F32, op, "bn"),
                             data<float>(reversed_taps, F32, op, "reversed_taps"),
                             optional_data<float>(dx, F32, op, "dx"),
                             optional_data<float>(dw_partial, F32, op, "dw_partial"),
                             data<float>(scratch, F32, op, "scratch"), T, B, C, D, front, T_out, threads);
}

void lif_delay_forward(const Tensor &z, const Tensor &keep, const Tensor &channel, const Tensor &w, const Tensor &y,
                       const Tensor &scratch, double decay, double threshold, int64_t T, int64_t B, int64_t C,
                       int64_t D, int64_t front, int64_t T_out, int64_t threads) {
    const char *op = "lif_delay_forward";
    suite_lif_delay_forward(data<float>(z, F32, op, "z"), data<float>(keep, F32, op, "keep"),
                            data<float>(channel, F32, op, "channel"), data<float>(w, F32, op, "w"),
                            data<float>(y, F32, op, "y"), data<float>(scratch, F32, op, "scratch"), decay, threshold,
                            T, B, C, D, front, T_out, threads);
}

void lif_delay_backward(const Tensor &z, const Tensor &keep, const Tensor &channel, const Tensor &g,
                        const Tensor &reversed_taps, const Tensor &dz, const Tensor &bn_partial,
                        const Optional &dw_partial, const Tensor &scratch, const Tensor &gamma, const Tensor &mean,
                        const Tensor &invstd, const Tensor &grad_gamma, const Tensor &grad_beta, const Tensor &work,
                        const Tensor &rows, double decay, double threshold, double scale, double half_alpha,
                        int64_t T, int64_t B, int64_t C, int64_t D, int64_t front, int64_t T_out, int64_t threads) {
    const char *op = "lif_delay_backward";
    suite_lif_delay_backward(
        data<float>(z, F32, op, "z"), data<float>(keep, F32, op, "keep"), data<float>(channel, F32, op, "channel"),
        data<float>(g, F32, op, "g"), data<float>(reversed_taps, F32, op, "reversed_taps"),
        data<float>(dz, F32, op, "dz"), data<double>(bn_partial, F64, op, "bn_partial"),
        optional_data<float>(dw_partial, F32, op, "dw_partial"), data<float>(scratch, F32, op, "scratch"),
        data<float>(gamma, F32, op, "gamma"), data<double>(mean, F64, op, "mean"),
        data<double>(invstd, F64, op, "invstd"), data<double>(grad_gamma, F64, op, "grad_gamma"),
        data<double>(grad_beta, F64, op, "grad_beta"), data<double>(work, F64, op, "work"),
        data<float>(rows, F32, op, "rows"), decay, threshold, scale, half_alpha, T, B, C, D, front, T_out, threads);
}

void bn_lif_forward(const Tensor &x, const Tensor &gamma, const Tensor &beta, const Tensor &keep, const Optional &out,
                    const Optional &checkpoints, const Optional &scratch, const Optional &v, const Tensor &channel,
                    const Tensor &mean, const Tensor &var, const Tensor &work, const Tensor &partial,
                    const Optional &moments, bool stats_only, double eps, double decay, double threshold, int64_t T,
                    int64_t B, int64_t C, int64_t every, int64_t threads) {
    const char *op = "bn_lif_forward";
    const auto type = real_type(x, op);
    suite_bn_lif_forward(type == F64, data<void>(x, type, op, "x"), data<void>(gamma, type, op, "gamma"),
                         data<void>(beta, type, op, "beta"), data<void>(keep, type, op, "keep"),
                         optional_data<void>(out, type, op, "out"),
                         optional_data<void>(checkpoints, type, op, "checkpoints"),
                         optional_data<void>(scratch, type, op, "scratch"), optional_data<void>(v, type, op, "v"),
                         data<void>(channel, type, op, "channel"), data<double>(mean, F64, op, "mean"),
                         data<double>(var, F64, op, "var"), data<double>(work, F64, op, "work"),
                         data<double>(partial, F64, op, "partial"), optional_data<double>(moments, F64, op, "moments"),
                         stats_only, eps, decay, threshold, T, B, C, every, threads);
}

void bn_lif_backward(const Tensor &x, const Tensor &checkpoints, const Tensor &forward_rows, const Tensor &scratch,
                     const Tensor &grad_out, const Tensor &keep, const Tensor &gamma, const Tensor &mean,
                     const Tensor &invstd, const Tensor &grad_x, const Tensor &channel, const Tensor &grad_gamma,
                     const Tensor &grad_beta, const Tensor &work, const Tensor &partial, bool defer_input_grad,
                     double decay, double threshold, double scale, double half_alpha, int64_t T, int64_t B,
                     int64_t C, int64_t every, int64_t threads) {
    const char *op = "bn_lif_backward";
    const auto type = real_type(x, op);
    suite_bn_lif_backward(
        type == F64, data<void>(x, type, op, "x"), data<void>(checkpoints, type, op, "checkpoints"),
        data<void>(forward_rows, type, op, "forward_rows"), data<void>(scratch, type, op, "scratch"),
        data<void>(grad_out, type, op, "grad_out"), data<void>(keep, type, op, "keep"),
        data<void>(gamma, type, op, "gamma"), data<double>(mean, F64, op, "mean"),
        data<double>(invstd, F64, op, "invstd"), data<void>(grad_x, type, op, "grad_x"),
        data<void>(channel, type, op, "channel"), data<double>(grad_gamma, F64, op, "grad_gamma"),
        data<double>(grad_beta, F64, op, "grad_beta"), data<double>(work, F64, op, "work"),
        data<double>(partial, F64, op, "partial"), defer_input_grad, decay, threshold, scale, half_alpha, T, B, C,
        every, threads);
}

void gaussian_taps(const Tensor &pos, int64_t C, int64_t D, int64_t Cp, double s, double eps, const Tensor &taps,
                   int64_t threads) {
    const char *op = "gaussian_taps";
    TORCH_CHECK(pos.numel() >= C && taps.numel() >= D * Cp, "suite_kernels.gaussian_taps: pos or taps too small");
    suite_gaussian_taps(data<float>(pos, F32, op, "pos"), C, D, Cp, s, eps, data<float>(taps, F32, op, "taps"),
                        threads);
}

void gaussian_position_grad(const Tensor &pos, const Tensor &taps, const Tensor &partial, int64_t n_partials,
                            int64_t rows, int64_t C, int64_t D, int64_t Cp, double s, const Tensor &grad_pos) {
    const char *op = "gaussian_position_grad";
    suite_gaussian_position_grad(data<float>(pos, F32, op, "pos"), data<float>(taps, F32, op, "taps"),
                                 data<float>(partial, F32, op, "partial"), n_partials, rows, C, D, Cp, s,
                                 data<float>(grad_pos, F32, op, "grad_pos"));
}

void window_correlate(const Tensor &src, const Tensor &taps, const Tensor &start, const Tensor &dst, int64_t n_dst,
                      int64_t n_src, int64_t W, int64_t R_src, int64_t T_out, int64_t Bv, int64_t threads) {
    const char *op = "window_correlate";
    suite_window_correlate(data<float>(src, F32, op, "src"), data<float>(taps, F32, op, "taps"),
                           data<int>(start, I32, op, "start"), data<float>(dst, F32, op, "dst"), n_dst, n_src, W,
                           R_src, T_out, Bv, threads);
}

void window_tap_grad(const Tensor &x, const Tensor &gy, const Tensor &start, const Tensor &ga, int64_t n_dst,
                     int64_t n_src, int64_t W, int64_t R_src, int64_t T_out, int64_t Bv, int64_t R_g,
                     int64_t threads) {
    const char *op = "window_tap_grad";
    suite_window_tap_grad(data<float>(x, F32, op, "x"), data<float>(gy, F32, op, "gy"),
                          data<int>(start, I32, op, "start"), data<float>(ga, F32, op, "ga"), n_dst, n_src, W, R_src,
                          T_out, Bv, R_g, threads);
}

int64_t scratch_floats(int64_t T, int64_t D, int64_t front, int64_t T_out, bool backward) {
    return suite_scratch_floats(T, D, front, T_out, backward);
}

int64_t bn_lif_scratch(int64_t B, int64_t C, int64_t every) { return suite_bn_lif_scratch(B, C, every); }

int64_t weight_grad_rows(int64_t D) { return suite_weight_grad_rows(D); }

// The kernels' layout constants: (vector width in floats, synaptic window tile, largest synaptic window).
std::tuple<int64_t, int64_t, int64_t> constants() {
    return {suite_vector_width(), suite_window_tile(), suite_window_max()};
}

}  // namespace

extern "C" int suite_pool_self(void) { return pool_member; }

extern "C" void suite_pool_run(int n_threads, void (*fn)(void *), void *data) {
    if (n_threads <= 1) {
        pool_member = 0;
        fn(data);
        return;
    }
    at::parallel_for(0, n_threads, 1, [&](int64_t begin, int64_t end) {
        for (int64_t member = begin; member < end; member++) {
            pool_member = static_cast<int>(member);
            fn(data);
        }
        pool_member = 0;
    });
}

TORCH_LIBRARY(suite_kernels, m) {
    m.def("recurrence(int kind, Tensor input, Tensor? grad, Tensor(a!) out, Tensor(b!)? out2, Tensor(c!)? v, "
          "float decay, float threshold, float scale, float half_alpha, int T, int N, int h_rows, int threads) -> ()",
          &recurrence);
    m.def("depthwise_forward(Tensor x, Tensor w, Tensor(a!) y, Tensor(b!)? moments, Tensor(c!) scratch, int T, "
          "int B, int C, int D, int front, int T_out, int threads) -> ()",
          &depthwise_forward);
    m.def("depthwise_backward(Tensor x, Tensor g, Tensor? y, Tensor? bn, Tensor reversed_taps, Tensor(a!)? dx, "
          "Tensor(b!)? dw_partial, Tensor(c!) scratch, int T, int B, int C, int D, int front, int T_out, "
          "int threads) -> ()",
          &depthwise_backward);
    m.def("lif_delay_forward(Tensor z, Tensor keep, Tensor channel, Tensor w, Tensor(a!) y, Tensor(b!) scratch, "
          "float decay, float threshold, int T, int B, int C, int D, int front, int T_out, int threads) -> ()",
          &lif_delay_forward);
    m.def("lif_delay_backward(Tensor z, Tensor keep, Tensor channel, Tensor g, Tensor reversed_taps, Tensor(a!) dz, "
          "Tensor(b!) bn_partial, Tensor(c!)? dw_partial, Tensor(d!) scratch, Tensor gamma, Tensor mean, "
          "Tensor invstd, Tensor(e!) grad_gamma, Tensor(f!) grad_beta, Tensor(g!) work, Tensor(h!) rows, "
          "float decay, float threshold, float scale, float half_alpha, int T, int B, int C, int D, int front, "
          "int T_out, int threads) -> ()",
          &lif_delay_backward);
    m.def("bn_lif_forward(Tensor x, Tensor gamma, Tensor beta, Tensor keep, Tensor(a!)? out, "
          "Tensor(b!)? checkpoints, Tensor(c!)? scratch, Tensor(d!)? v, Tensor(e!) channel, Tensor(f!) mean, "
          "Tensor(g!) var, Tensor(h!) work, Tensor(i!) partial, Tensor? moments, bool stats_only, float eps, "
          "float decay, float threshold, int T, int B, int C, int every, int threads) -> ()",
          &bn_lif_forward);
    m.def("bn_lif_backward(Tensor x, Tensor checkpoints, Tensor forward_rows, Tensor(a!) scratch, Tensor grad_out, "
          "Tensor keep, Tensor gamma, Tensor mean, Tensor invstd, Tensor(b!) grad_x, Tensor(c!) channel, "
          "Tensor(d!) grad_gamma, Tensor(e!) grad_beta, Tensor(f!) work, Tensor(g!) partial, bool defer_input_grad, "
          "float decay, float threshold, float scale, float half_alpha, int T, int B, int C, int every, "
          "int threads) -> ()",
          &bn_lif_backward);
    m.def("gaussian_taps(Tensor pos, int C, int D, int Cp, float s, float eps, Tensor(a!) taps, int threads) -> ()",
          &gaussian_taps);
    m.def("gaussian_position_grad(Tensor pos, Tensor taps, Tensor partial, int n_partials, int rows, int C, int D, "
          "int Cp, float s, Tensor(a!) grad_pos) -> ()",
          &gaussian_position_grad);
    m.def("window_correlate(Tensor src, Tensor taps, Tensor start, Tensor(a!) dst, int n_dst, int n_src, int W, "
          "int R_src, int T_out, int Bv, int threads) -> ()",
          &window_correlate);
    m.def("window_tap_grad(Tensor x, Tensor gy, Tensor start, Tensor(a!) ga, int n_dst, int n_src, int W, "
          "int R_src, int T_out, int Bv, int R_g, int threads) -> ()",
          &window_tap_grad);
    m.def("scratch_floats(int T, int D, int front, int T_out, bool backward) -> int", &scratch_floats);
    m.def("bn_lif_scratch(int B, int C, int every) -> int", &bn_lif_scratch);
    m.def("weight_grad_rows(int D) -> int", &weight_grad_rows);
    m.def("constants() -> (int, int, int)", &constants);
}
