// TopKMask: the 0/1 mask of tf.math.top_k's selection, for CPUs.
//
// TopKSparsity only needs the k-th largest value of each row, not the sorted
// top k. TensorFlow's CPU TopK pushes every entry through a heap; here each
// row's threshold is found by bisection over order-preserving integer keys of
// the floats, counting the entries >= a candidate in a branch-free loop that
// the compiler vectorises (with GCC on x86-64 Linux, an AVX2 clone is chosen at
// load time where the CPU has it). The search stops as soon as exactly k entries are
// >= the candidate (about 10-12 counts for rows of 64-256). Rows whose k-th
// value is tied with the (k+1)-th keep the tied entries of lowest index, as
// tf.math.top_k does, so the mask equals the scatter of top_k's indices.
//
// Inputs are [..., C] (rows along the last axis) or, with spatial=true,
// [B, H, W, C] (rows over H*W for each image and channel). -0 and +0 are equal;
// a NaN orders by its bit pattern (above +inf when its sign bit is clear), so
// it never breaks the search.

#define EIGEN_USE_THREADS

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace tf_sparse_gen {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;

REGISTER_OP("TopKMask")
    .Input("x: float")
    .Output("mask: float")
    .Attr("k: int >= 1")
    .Attr("spatial: bool = false")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      return ::absl::OkStatus();
    })
    .Doc(R"doc(
The 0/1 mask of the k largest entries of each row (tf.math.top_k's selection).

x: [..., C] (rows along the last axis) or, with spatial, [B, H, W, C].
mask: same shape as x; exactly k ones per row.
k: entries kept per row.
spatial: rows are the H*W values of each image and channel.
)doc");

namespace {

// Signed integer keys whose order is the float order; -0 and +0 share a key.
inline int32_t Key(float v) {
  v = v + 0.0f;
  int32_t s;
  std::memcpy(&s, &v, sizeof(s));
  return s ^ ((s >> 31) & 0x7fffffff);
}

inline int CountAtLeast(const int32_t* keys, int n, int32_t t) {
  int count = 0;
  for (int i = 0; i < n; ++i) count += keys[i] >= t;
  return count;
}

// Writes to *threshold the smallest key kept and returns true when exactly the
// entries with key >= *threshold are kept, false when the k-th key is tied
// with an entry outside the top k (then the caller breaks the tie by index).
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define TF_SPARSE_GEN_X86_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TF_SPARSE_GEN_X86_CLONES
#endif

TF_SPARSE_GEN_X86_CLONES
bool RowThreshold(const int32_t* keys, int n, int k, int32_t* threshold) {
  int32_t lowest = keys[0], highest = keys[0];
  for (int i = 1; i < n; ++i) {
    lowest = std::min(lowest, keys[i]);
    highest = std::max(highest, keys[i]);
  }
  // Fewer than k entries above the row's minimum (a ReLU output with fewer than k positives):
  // the k-th is the minimum, tied unless the row has only k entries.
  int above_lowest = 0;
  for (int i = 0; i < n; ++i) above_lowest += keys[i] > lowest;
  if (above_lowest < k) {
    *threshold = lowest;
    return n == k;
  }
  // Invariant: count(>= lo) >= k > count(>= hi).
  int64_t lo = lowest, hi = static_cast<int64_t>(highest) + 1;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    const int count = CountAtLeast(keys, n, static_cast<int32_t>(mid));
    if (count == k) {
      *threshold = static_cast<int32_t>(mid);
      return true;
    }
    if (count > k) lo = mid; else hi = mid;
  }
  *threshold = static_cast<int32_t>(lo);
  return CountAtLeast(keys, n, *threshold) == k;
}

// Mask of a tied row: everything above the k-th key, then the tied entries of
// lowest index until k are kept.
void TiedRowMask(const int32_t* keys, int n, int k, int32_t kth, float* out, int64_t stride) {
  int greater = 0;
  for (int i = 0; i < n; ++i) greater += keys[i] > kth;
  int ties = k - greater;
  for (int i = 0; i < n; ++i) {
    const bool keep = keys[i] > kth || (keys[i] == kth && ties-- > 0);
    out[i * stride] = keep ? 1.0f : 0.0f;
  }
}

}  // namespace

class TopKMaskOp : public OpKernel {
 public:
  explicit TopKMaskOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("k", &k_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("spatial", &spatial_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const int dims = x.dims();
    OP_REQUIRES(ctx, dims >= 1,
                ::absl::InvalidArgumentError("TopKMask needs an input of rank >= 1, got a scalar"));
    OP_REQUIRES(ctx, !spatial_ || dims == 4,
                ::absl::InvalidArgumentError("TopKMask with spatial=true needs a [B, H, W, C] input, got shape " +
                                             x.shape().DebugString()));
    Tensor* mask = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &mask));
    if (x.NumElements() == 0) return;
    const float* in = x.flat<float>().data();
    float* out = mask->flat<float>().data();
    const int64_t channels = x.dim_size(dims - 1);
    const int n = static_cast<int>(spatial_ ? x.dim_size(1) * x.dim_size(2) : channels);
    OP_REQUIRES(ctx, k_ <= n,
                ::absl::InvalidArgumentError("TopKMask: k = " + std::to_string(k_) + " is larger than the " +
                                             std::to_string(n) + " entries of a row"));
    const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    const int k = k_;
    if (spatial_) {
      // One work unit per image: its [H*W, C] block is transposed to C rows of H*W keys.
      const int64_t batch = x.dim_size(0);
      const int64_t image = n * channels;
      ::tensorflow::Shard(workers->num_threads, workers->workers, batch, image * 12,
                          [&](int64_t begin, int64_t end) {
        std::vector<int32_t> keys(image), thresholds(channels);
        std::vector<char> exact(channels);
        for (int64_t b = begin; b < end; ++b) {
          const float* img = in + b * image;
          float* img_out = out + b * image;
          // [H*W, C] -> [C, H*W]
          for (int i = 0; i < n; ++i)
            for (int64_t c = 0; c < channels; ++c) keys[c * n + i] = Key(img[i * channels + c]);
          for (int64_t c = 0; c < channels; ++c)
            exact[c] = RowThreshold(keys.data() + c * n, n, k, &thresholds[c]);
          // Keys are recomputed from the input rather than read back from the transposed
          // buffer, so that reads and writes both run in NHWC order.
          for (int i = 0; i < n; ++i)
            for (int64_t c = 0; c < channels; ++c)
              img_out[i * channels + c] = Key(img[i * channels + c]) >= thresholds[c] ? 1.0f : 0.0f;
          for (int64_t c = 0; c < channels; ++c)
            if (!exact[c]) TiedRowMask(keys.data() + c * n, n, k, thresholds[c], img_out + c, channels);
        }
      });
    } else {
      const int64_t rows = x.NumElements() / channels;
      ::tensorflow::Shard(workers->num_threads, workers->workers, rows, n * 12,
                          [&](int64_t begin, int64_t end) {
        std::vector<int32_t> keys(n);
        for (int64_t r = begin; r < end; ++r) {
          const float* row = in + r * n;
          float* row_out = out + r * n;
          for (int i = 0; i < n; ++i) keys[i] = Key(row[i]);
          int32_t threshold;
          if (RowThreshold(keys.data(), n, k, &threshold)) {
            for (int i = 0; i < n; ++i) row_out[i] = keys[i] >= threshold ? 1.0f : 0.0f;
          } else {
            TiedRowMask(keys.data(), n, k, threshold, row_out, 1);
          }
        }
      });
    }
  }

 private:
  int k_;
  bool spatial_;
};

REGISTER_KERNEL_BUILDER(Name("TopKMask").Device(::tensorflow::DEVICE_CPU), TopKMaskOp);

}  // namespace tf_sparse_gen
