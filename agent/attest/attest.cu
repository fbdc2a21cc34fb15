// Kernels of the CUDA self-test of `aitbc-agent attest` (docs/attestation.md).
//
// Built to PTX by `make ptx` (nvcc -ptx) and committed as attest.ptx, so that nothing at
// install or run time needs the CUDA toolkit: the driver compiles the PTX for the card it runs
// on. scripts/build_ptx.py lowers the PTX's `.version` so that drivers older than the toolkit
// load it too (these kernels use no newer instruction).

// Word i of the proof-of-memory fill: SplitMix64's i-th output from `seed`
// (aitbc_common/proof.py computes the same on the CPU).
extern "C" __global__ void aitbc_fill(unsigned long long *buf, unsigned long long n,
                                      unsigned long long seed) {
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
         i < n; i += stride) {
        unsigned long long z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        buf[i] = z ^ (z >> 31);
    }
}

// FP32 throughput: 8 independent FMA chains per thread keep the FMA pipes full; each
// iteration is 8 FMAs, 16 floating-point operations. The sum is written so nothing is dead.
extern "C" __global__ void aitbc_fma(float *out, int iterations) {
    float a0 = threadIdx.x * 1e-7f, a1 = a0 + 1.0f, a2 = a0 + 2.0f, a3 = a0 + 3.0f;
    float a4 = a0 + 4.0f, a5 = a0 + 5.0f, a6 = a0 + 6.0f, a7 = a0 + 7.0f;
    const float b = 0.9999999f, c = 1e-7f;
#pragma unroll 16
    for (int i = 0; i < iterations; i++) {
        a0 = fmaf(a0, b, c); a1 = fmaf(a1, b, c); a2 = fmaf(a2, b, c); a3 = fmaf(a3, b, c);
        a4 = fmaf(a4, b, c); a5 = fmaf(a5, b, c); a6 = fmaf(a6, b, c); a7 = fmaf(a7, b, c);
    }
    out[(unsigned long long)blockIdx.x * blockDim.x + threadIdx.x] =
        a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}
