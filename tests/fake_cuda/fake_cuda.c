/*
 * fake_cuda.c — a fake libcuda.so.1 for the attestation tests, like tests/fake_nvml.
 *
 * Implements the CUDA driver API entry points agent/gpu/cuda.py calls. The kernels of
 * agent/attest/attest.ptx are "run" on the CPU: the fill kernel records its seed and length,
 * and a read of device memory computes the SplitMix64 word it would hold (the same function
 * as the PTX and aitbc_common/proof.py), so a test can "fill" 80 GiB without having it. Time
 * is simulated: each kernel or copy advances a virtual clock by its work divided by the
 * device's configured rate, and events read that clock.
 *
 * Configuration, from the environment at each cuInit (a test may change it between runs):
 *   FAKE_CUDA_DEVICES=N         devices (0 or unset: cuInit answers CUDA_ERROR_NO_DEVICE)
 *   FAKE_CUDA_INIT_ERROR=code   cuInit fails with it
 *   FAKE_CUDA_MAX_PTX=9.0       the newest PTX ISA this "driver" compiles
 *   per device i (0-based):
 *   FAKE_CUDA_<i>_UUID          32 hex digits, or NVML's "GPU-xxxxxxxx-..." spelling
 *   FAKE_CUDA_<i>_NAME          "NVIDIA H100 80GB HBM3"
 *   FAKE_CUDA_<i>_TOTAL_MIB     what cuDeviceTotalMem says (81559)
 *   FAKE_CUDA_<i>_MEMORY_MIB    what can really be allocated (default: TOTAL_MIB)
 *   FAKE_CUDA_<i>_TFLOPS        FP32 rate of the FMA kernel (60)
 *   FAKE_CUDA_<i>_TBPS          memory bandwidth, TB/s (3.0)
 *   FAKE_CUDA_<i>_CC            compute capability ("9.0")
 *   FAKE_CUDA_<i>_PCI           PCI bus id ("0000:18:00.0")
 *   FAKE_CUDA_<i>_SMS           multiprocessors (132)
 *   cheats:
 *   FAKE_CUDA_<i>_WRONG=1       every word read back has a bit flipped
 *   FAKE_CUDA_<i>_REPLAY_SEED=s the fill ignores the seed it is given and uses s (a recorded
 *                               fill replayed)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))
#define MAX_DEVICES 16
#define MAX_ALLOCS 64
#define MAX_COPIES 64
#define MIB 1048576ULL
#define BASE 0x7f0000000000ULL

typedef int CUresult;
typedef int CUdevice;
typedef uint64_t CUdeviceptr;
enum {
    CUDA_SUCCESS = 0, CUDA_ERROR_INVALID_VALUE = 1, CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_NOT_INITIALIZED = 3, CUDA_ERROR_NO_DEVICE = 100, CUDA_ERROR_INVALID_DEVICE = 101,
    CUDA_ERROR_INVALID_IMAGE = 200, CUDA_ERROR_INVALID_CONTEXT = 201,
    CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222, CUDA_ERROR_NOT_FOUND = 500,
    CUDA_ERROR_ILLEGAL_ADDRESS = 700,
};

struct device {
    char name[128]; unsigned char uuid[16]; char pci[32];
    uint64_t total_mib, memory_mib, allocated; double tflops, tbps;
    int cc_major, cc_minor, sms, wrong, replay; uint64_t replay_seed;
};
struct alloc { CUdeviceptr ptr; uint64_t size; int device, filled; uint64_t seed, words; };
struct copy { CUdeviceptr dst, src; uint64_t n; };
struct kernel { int kind; };  /* 1: aitbc_fill, 2: aitbc_fma */
struct event { double at; };

static struct device devices[MAX_DEVICES];
static int n_devices = -1, current = -1;
static double max_ptx = 9.0, clock_s;
static struct alloc allocs[MAX_ALLOCS];
static struct copy copies[MAX_COPIES];
static int n_copies;
static CUdeviceptr next_ptr = BASE;
static struct kernel fill_kernel = {1}, fma_kernel = {2};
static int module_token;

static const char *env(int i, const char *key) {
    char name[64];
    if (i < 0) snprintf(name, sizeof name, "FAKE_CUDA_%s", key);
    else snprintf(name, sizeof name, "FAKE_CUDA_%d_%s", i, key);
    return getenv(name);
}
static double envf(int i, const char *key, double dflt) {
    const char *v = env(i, key); return v && *v ? strtod(v, NULL) : dflt;
}
static void parse_uuid(const char *text, unsigned char out[16], int index) {
    memset(out, 0, 16);
    if (!text) { out[0] = 0xfa; out[1] = 0x4e; out[15] = (unsigned char)index; return; }
    int k = 0;
    for (const char *p = text; *p && k < 32; p++) {
        int d = (*p >= '0' && *p <= '9') ? *p - '0' : (*p >= 'a' && *p <= 'f') ? *p - 'a' + 10
              : (*p >= 'A' && *p <= 'F') ? *p - 'A' + 10 : -1;
        if (d < 0) continue;  /* skips "GPU-" and the dashes */
        out[k / 2] |= (unsigned char)(k % 2 ? d : d << 4); k++;
    }
}
static void load(void) {
    n_devices = (int)envf(-1, "DEVICES", 0);
    if (n_devices > MAX_DEVICES) n_devices = MAX_DEVICES;
    max_ptx = envf(-1, "MAX_PTX", 9.0);
    for (int i = 0; i < n_devices; i++) {
        struct device *d = &devices[i];
        memset(d, 0, sizeof *d);
        const char *name = env(i, "NAME");
        snprintf(d->name, sizeof d->name, "%s", name ? name : "NVIDIA H100 80GB HBM3");
        parse_uuid(env(i, "UUID"), d->uuid, i);
        const char *pci = env(i, "PCI");
        if (pci) snprintf(d->pci, sizeof d->pci, "%s", pci);
        else snprintf(d->pci, sizeof d->pci, "0000:%02x:00.0", 0x18 + i);
        d->total_mib = (uint64_t)envf(i, "TOTAL_MIB", 81559);
        d->memory_mib = (uint64_t)envf(i, "MEMORY_MIB", (double)d->total_mib);
        d->tflops = envf(i, "TFLOPS", 60.0); d->tbps = envf(i, "TBPS", 3.0);
        double cc = envf(i, "CC", 9.0);
        d->cc_major = (int)cc; d->cc_minor = (int)((cc - d->cc_major) * 10 + 0.5);
        d->sms = (int)envf(i, "SMS", 132);
        d->wrong = (int)envf(i, "WRONG", 0);
        const char *replay = env(i, "REPLAY_SEED");
        d->replay = replay != NULL; d->replay_seed = replay ? strtoull(replay, NULL, 0) : 0;
    }
}

static uint64_t splitmix(uint64_t seed, uint64_t i) {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

#define NEED_INIT() do { if (n_devices < 0) return CUDA_ERROR_NOT_INITIALIZED; } while (0)
#define NEED_CTX() do { NEED_INIT(); if (current < 0) return CUDA_ERROR_INVALID_CONTEXT; } while (0)

EXPORT CUresult cuInit(unsigned int flags) {
    (void)flags;
    const char *err = env(-1, "INIT_ERROR");
    if (err && *err) return atoi(err);
    load();
    return n_devices > 0 ? CUDA_SUCCESS : CUDA_ERROR_NO_DEVICE;
}
EXPORT CUresult cuDriverGetVersion(int *v) { *v = 12040; return CUDA_SUCCESS; }
EXPORT CUresult cuGetErrorName(CUresult code, const char **out) {
    static const struct { int code; const char *name; } names[] = {
        {0, "CUDA_SUCCESS"}, {1, "CUDA_ERROR_INVALID_VALUE"}, {2, "CUDA_ERROR_OUT_OF_MEMORY"},
        {3, "CUDA_ERROR_NOT_INITIALIZED"}, {100, "CUDA_ERROR_NO_DEVICE"},
        {101, "CUDA_ERROR_INVALID_DEVICE"}, {200, "CUDA_ERROR_INVALID_IMAGE"},
        {201, "CUDA_ERROR_INVALID_CONTEXT"}, {222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"},
        {500, "CUDA_ERROR_NOT_FOUND"}, {700, "CUDA_ERROR_ILLEGAL_ADDRESS"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].code == code) { *out = names[i].name; return CUDA_SUCCESS; }
    *out = NULL; return CUDA_ERROR_INVALID_VALUE;
}
EXPORT CUresult cuDeviceGetCount(int *n) { NEED_INIT(); *n = n_devices; return CUDA_SUCCESS; }
EXPORT CUresult cuDeviceGet(CUdevice *dev, int ordinal) {
    NEED_INIT();
    if (ordinal < 0 || ordinal >= n_devices) return CUDA_ERROR_INVALID_DEVICE;
    *dev = ordinal; return CUDA_SUCCESS;
}
#define DEV(d) do { NEED_INIT(); if ((d) < 0 || (d) >= n_devices) return CUDA_ERROR_INVALID_DEVICE; } while (0)
EXPORT CUresult cuDeviceGetName(char *name, int len, CUdevice d) {
    DEV(d); snprintf(name, (size_t)len, "%s", devices[d].name); return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice d) {
    DEV(d); *bytes = (size_t)(devices[d].total_mib * MIB); return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetUuid(unsigned char *uuid, CUdevice d) {
    DEV(d); memcpy(uuid, devices[d].uuid, 16); return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetPCIBusId(char *bus, int len, CUdevice d) {
    DEV(d); snprintf(bus, (size_t)len, "%s", devices[d].pci); return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetAttribute(int *value, int attribute, CUdevice d) {
    DEV(d);
    switch (attribute) {
    case 16: *value = devices[d].sms; return CUDA_SUCCESS;
    case 75: *value = devices[d].cc_major; return CUDA_SUCCESS;
    case 76: *value = devices[d].cc_minor; return CUDA_SUCCESS;
    default: return CUDA_ERROR_INVALID_VALUE;
    }
}
EXPORT CUresult cuDevicePrimaryCtxRetain(void **ctx, CUdevice d) {
    DEV(d); *ctx = &devices[d]; return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxSetCurrent(void *ctx) {
    NEED_INIT();
    current = ctx ? (int)((struct device *)ctx - devices) : -1;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) {
    DEV(d);
    for (int i = 0; i < MAX_ALLOCS; i++)  /* a released context frees what it held */
        if (allocs[i].ptr && allocs[i].device == d) { devices[d].allocated -= allocs[i].size; memset(&allocs[i], 0, sizeof allocs[i]); }
    if (current == d) current = -1;
    n_copies = 0;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxSynchronize(void) { NEED_CTX(); return CUDA_SUCCESS; }

EXPORT CUresult cuModuleLoadData(void **module, const void *image) {
    NEED_CTX();
    const char *ptx = image, *v = strstr(ptx, ".version ");
    if (!v || !strstr(ptx, ".entry aitbc_fill") || !strstr(ptx, ".entry aitbc_fma"))
        return CUDA_ERROR_INVALID_IMAGE;
    if (strtod(v + 9, NULL) > max_ptx + 1e-9) return CUDA_ERROR_UNSUPPORTED_PTX_VERSION;
    *module = &module_token; return CUDA_SUCCESS;
}
EXPORT CUresult cuModuleUnload(void *module) { (void)module; return CUDA_SUCCESS; }
EXPORT CUresult cuModuleGetFunction(void **fn, void *module, const char *name) {
    NEED_CTX();
    if (module != &module_token) return CUDA_ERROR_INVALID_VALUE;
    if (!strcmp(name, "aitbc_fill")) { *fn = &fill_kernel; return CUDA_SUCCESS; }
    if (!strcmp(name, "aitbc_fma")) { *fn = &fma_kernel; return CUDA_SUCCESS; }
    return CUDA_ERROR_NOT_FOUND;
}

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *ptr, size_t size) {
    NEED_CTX();
    struct device *d = &devices[current];
    if (size == 0) return CUDA_ERROR_INVALID_VALUE;
    if (d->allocated + size > d->memory_mib * MIB) return CUDA_ERROR_OUT_OF_MEMORY;
    for (int i = 0; i < MAX_ALLOCS; i++) {
        if (allocs[i].ptr) continue;
        allocs[i] = (struct alloc){next_ptr, size, current, 0, 0, 0};
        *ptr = next_ptr; next_ptr += (size + 0xFFFFF) & ~0xFFFFFULL;
        d->allocated += size;
        return CUDA_SUCCESS;
    }
    return CUDA_ERROR_OUT_OF_MEMORY;
}
EXPORT CUresult cuMemFree_v2(CUdeviceptr ptr) {
    NEED_CTX();
    for (int i = 0; i < MAX_ALLOCS; i++)
        if (allocs[i].ptr == ptr) {
            devices[allocs[i].device].allocated -= allocs[i].size;
            memset(&allocs[i], 0, sizeof allocs[i]); return CUDA_SUCCESS;
        }
    return CUDA_ERROR_INVALID_VALUE;
}
static struct alloc *find(CUdeviceptr addr) {
    for (int i = 0; i < MAX_ALLOCS; i++)
        if (allocs[i].ptr && addr >= allocs[i].ptr && addr < allocs[i].ptr + allocs[i].size) return &allocs[i];
    return NULL;
}
static int read_word(CUdeviceptr addr, uint64_t *out) {
    for (int c = n_copies - 1; c >= 0; c--)  /* the newest copy that wrote here wins */
        if (addr >= copies[c].dst && addr < copies[c].dst + copies[c].n) addr = copies[c].src + (addr - copies[c].dst);
    struct alloc *a = find(addr);
    if (!a || addr + 8 > a->ptr + a->size) return -1;
    uint64_t index = (addr - a->ptr) / 8;
    *out = a->filled && index < a->words ? splitmix(a->seed, index) : 0;
    if (devices[a->device].wrong) *out ^= 1ULL << (index % 64);
    return 0;
}
EXPORT CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) {
    NEED_CTX();
    if (n % 8 || src % 8) return CUDA_ERROR_INVALID_VALUE;
    for (size_t k = 0; k < n / 8; k++)
        if (read_word(src + 8 * k, (uint64_t *)dst + k)) return CUDA_ERROR_ILLEGAL_ADDRESS;
    clock_s += 10e-6;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n) {
    NEED_CTX();
    struct alloc *a = find(src), *b = find(dst);
    if (!a || !b || src + n > a->ptr + a->size || dst + n > b->ptr + b->size) return CUDA_ERROR_ILLEGAL_ADDRESS;
    if (n_copies < MAX_COPIES) copies[n_copies++] = (struct copy){dst, src, n};
    clock_s += 2.0 * (double)n / (devices[current].tbps * 1e12);
    return CUDA_SUCCESS;
}
EXPORT CUresult cuLaunchKernel(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                               unsigned by, unsigned bz, unsigned shmem, void *stream,
                               void **params, void **extra) {
    NEED_CTX();
    (void)shmem; (void)stream; (void)extra;
    struct device *d = &devices[current];
    double threads = (double)gx * gy * gz * bx * by * bz;
    if (fn == &fill_kernel) {
        CUdeviceptr buf = *(CUdeviceptr *)params[0];
        uint64_t n = *(uint64_t *)params[1], seed = *(uint64_t *)params[2];
        struct alloc *a = find(buf);
        if (!a || a->ptr != buf || n * 8 > a->size) return CUDA_ERROR_ILLEGAL_ADDRESS;
        a->filled = 1; a->words = n; a->seed = d->replay ? d->replay_seed : seed;
        clock_s += 8.0 * (double)n / (d->tbps * 1e12);
        return CUDA_SUCCESS;
    }
    if (fn == &fma_kernel) {
        int iterations = *(int *)params[1];
        if (!find(*(CUdeviceptr *)params[0])) return CUDA_ERROR_ILLEGAL_ADDRESS;
        clock_s += threads * iterations * 16.0 / (d->tflops * 1e12);
        return CUDA_SUCCESS;
    }
    return CUDA_ERROR_INVALID_VALUE;
}
EXPORT CUresult cuEventCreate(void **ev, unsigned flags) {
    (void)flags; NEED_CTX();
    struct event *e = calloc(1, sizeof *e);
    if (!e) return CUDA_ERROR_OUT_OF_MEMORY;
    *ev = e; return CUDA_SUCCESS;
}
EXPORT CUresult cuEventRecord(void *ev, void *stream) {
    (void)stream; NEED_CTX(); ((struct event *)ev)->at = clock_s; return CUDA_SUCCESS;
}
EXPORT CUresult cuEventSynchronize(void *ev) { (void)ev; NEED_CTX(); return CUDA_SUCCESS; }
EXPORT CUresult cuEventElapsedTime(float *ms, void *start, void *end) {
    NEED_CTX();
    *ms = (float)((((struct event *)end)->at - ((struct event *)start)->at) * 1e3);
    return CUDA_SUCCESS;
}
EXPORT CUresult cuEventDestroy_v2(void *ev) { free(ev); return CUDA_SUCCESS; }
