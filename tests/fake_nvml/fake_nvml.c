/*
 * fake_nvml.c — a small fake libnvidia-ml.so.1 for the agent's tests (tier 2).
 *
 * Implements only the NVML entry points the agent calls, with struct layouts that mirror the
 * ctypes declarations of the pinned nvidia-ml-py (pynvml.py): nvmlMemory_t / nvmlMemory_v2_t,
 * nvmlPciInfo_t, nvmlUtilization_t, nvmlProcessInfo_v2_t (= v3 in pynvml), nvmlTemperature_v1_t,
 * nvmlEventData_t. The real pynvml loads it through LD_LIBRARY_PATH (or pynvml.nvmlLib).
 *
 * Configuration: a JSON file named by $FAKE_NVML_CONFIG, re-read whenever its mtime, size or
 * inode changes, so a test can flip faults while a process runs (write a temp file, rename it).
 *
 *   { "driver_version": "550.54.15", "nvml_version": "12.550.54.15",
 *     "cuda_driver_version": 12040, "init_error": 0,
 *     "gpus": [ { "uuid": "GPU-...", "name": "...", "memory_total_mib": 81559, ...,
 *                 "pci_device_id": 9008, "serial": "1654922000000", "bar1_total_mib": 131072,
 *                 "lost": false, "errors": {"nvmlDeviceGetPowerUsage": 3},
 *                 "hang_ms": {"nvmlDeviceGetPowerUsage": 3000},
 *                 "mig_devices": [ {"uuid": "MIG-...", "name": "... MIG 1g.10gb", ...} ] } ],
 *     "events": [ {"id": 1, "gpu": 0, "xid": 79} ] }
 *
 * A numeric field that is absent makes its getter return NVML_ERROR_NOT_SUPPORTED. "errors"
 * forces a return code per entry point; "hang_ms" makes an entry point sleep before answering;
 * "lost": true makes every call on that GPU return NVML_ERROR_GPU_IS_LOST. Events are delivered
 * once each, in id order, to event sets the GPU was registered with.
 *
 * Missing symbols: build with -DOMIT_<entry point> (e.g. -DOMIT_nvmlDeviceGetTemperatureV), so
 * ctypes' getattr fails exactly as it does against an older driver. Omittable: the versioned
 * entry points that have an older fallback (see the #ifndef OMIT_ guards).
 */
#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0, NVML_ERROR_UNINITIALIZED = 1, NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3, NVML_ERROR_NOT_FOUND = 6, NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_TIMEOUT = 10, NVML_ERROR_GPU_IS_LOST = 15, NVML_ERROR_MEMORY = 20,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25, NVML_ERROR_UNKNOWN = 999,
};

#define MAX_GPUS 16
#define MAX_MIG 8
#define MAX_OVERRIDES 32
#define MAX_EVENTS 256
#define ABSENT INT64_MIN
#define MIB 1048576ULL
#define XID_CRITICAL 0x8ULL
#define NO_INSTANCE 0xFFFFFFFFu

/* ---- struct layouts (mirror pynvml.py) ---- */
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned long long bar1Total, bar1Free, bar1Used; } nvmlBAR1Memory_t;
typedef struct { unsigned int version; unsigned long long total, reserved, free, used; } nvmlMemory_v2_t;
#define NVML_MEMORY_V2 ((unsigned int)(sizeof(nvmlMemory_v2_t) | (2u << 24)))
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct {
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;
typedef struct { unsigned int version; unsigned int sensorType; int temperature; } nvmlTemperature_v1_t;
#define NVML_TEMPERATURE_V1 ((unsigned int)(sizeof(nvmlTemperature_v1_t) | (1u << 24)))

struct fake_device { int gpu; int mig; };  /* what an nvmlDevice_t points at */
typedef struct fake_device *nvmlDevice_t;
typedef struct {
    nvmlDevice_t device;
    unsigned long long eventType, eventData;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlEventData_t;
struct fake_event_set { unsigned long long mask[MAX_GPUS]; long long delivered; int live; };
typedef struct fake_event_set *nvmlEventSet_t;

/* ---- minimal JSON ---- */
typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;
typedef struct jv {
    jtype t; double num; char *str;
    struct jv *items; char **keys; size_t n;
} jv;

static const char *jp;
static int jparse(jv *out);
static void jskip(void) { while (*jp && isspace((unsigned char)*jp)) jp++; }
static int jstring(char **out) {
    size_t cap = 32, n = 0; char *s = malloc(cap);
    if (!s || *jp != '"') { free(s); return -1; }
    jp++;
    while (*jp && *jp != '"') {
        char c = *jp++;
        if (c == '\\') {
            char e = *jp++;
            c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'u' ? '?' : e;
            if (e == 'u') { for (int i = 0; i < 4 && *jp; i++) jp++; }
        }
        if (n + 2 > cap) { cap *= 2; char *t = realloc(s, cap); if (!t) { free(s); return -1; } s = t; }
        s[n++] = c;
    }
    if (*jp != '"') { free(s); return -1; }
    jp++; s[n] = 0; *out = s; return 0;
}
static int jparse(jv *out) {
    memset(out, 0, sizeof *out);
    jskip();
    if (*jp == '{' || *jp == '[') {
        int obj = *jp == '{'; char close = obj ? '}' : ']';
        out->t = obj ? J_OBJ : J_ARR; jp++; jskip();
        if (*jp == close) { jp++; return 0; }
        for (;;) {
            out->items = realloc(out->items, (out->n + 1) * sizeof(jv));
            if (obj) {
                out->keys = realloc(out->keys, (out->n + 1) * sizeof(char *));
                jskip(); if (jstring(&out->keys[out->n])) return -1;
                jskip(); if (*jp++ != ':') return -1;
            }
            if (jparse(&out->items[out->n])) return -1;
            out->n++; jskip();
            if (*jp == ',') { jp++; continue; }
            if (*jp == close) { jp++; return 0; }
            return -1;
        }
    }
    if (*jp == '"') { out->t = J_STR; return jstring(&out->str); }
    if (!strncmp(jp, "true", 4)) { out->t = J_BOOL; out->num = 1; jp += 4; return 0; }
    if (!strncmp(jp, "false", 5)) { out->t = J_BOOL; jp += 5; return 0; }
    if (!strncmp(jp, "null", 4)) { out->t = J_NULL; jp += 4; return 0; }
    char *end; out->num = strtod(jp, &end);
    if (end == jp) return -1;
    out->t = J_NUM; jp = end; return 0;
}
static void jfree(jv *v) {
    for (size_t i = 0; i < v->n; i++) { jfree(&v->items[i]); if (v->keys) free(v->keys[i]); }
    free(v->items); free(v->keys); free(v->str);
}
static const jv *jget(const jv *o, const char *key) {
    if (!o || o->t != J_OBJ) return NULL;
    for (size_t i = 0; i < o->n; i++) if (!strcmp(o->keys[i], key)) return &o->items[i];
    return NULL;
}
static int64_t jint(const jv *o, const char *key) {
    const jv *v = jget(o, key);
    return v && (v->t == J_NUM || v->t == J_BOOL) ? (int64_t)v->num : ABSENT;
}
static void jstr(const jv *o, const char *key, char *dst, size_t cap) {
    const jv *v = jget(o, key);
    dst[0] = 0;
    if (v && v->t == J_STR) { strncpy(dst, v->str, cap - 1); dst[cap - 1] = 0; }
}

/* ---- configuration model ---- */
struct override { char fn[64]; int64_t value; };
struct mig { char uuid[96], name[96]; int64_t memory_total_mib, gi, ci; };
struct gpu {
    char uuid[96], name[96], pci_bus_id[32], serial[32];
    int64_t pci_device_id, bar1_total_mib;
    int64_t memory_total_mib, memory_used_mib, util, mem_util, temp, power_mw, power_limit_mw;
    int64_t sm_clock, max_sm_clock, max_mem_clock, fan, pstate, ecc, throttle, processes;
    int64_t cc_major, cc_minor, persistence, mig_mode, xid_supported;
    int lost;
    struct override errors[MAX_OVERRIDES]; int n_errors;
    struct override hangs[MAX_OVERRIDES]; int n_hangs;
    struct mig migs[MAX_MIG]; int n_migs;
};
struct event { int64_t id, gpu, xid; };
static struct {
    char driver[80], nvml[80];
    int64_t cuda, init_error;
    struct gpu gpus[MAX_GPUS]; int n_gpus;
    struct event events[MAX_EVENTS]; int n_events;
} cfg;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct stat seen;
static int loaded, initialised;
static struct fake_device dev_handles[MAX_GPUS], mig_handles[MAX_GPUS][MAX_MIG];
static struct fake_event_set event_sets[8];

static void read_overrides(const jv *o, struct override *dst, int *n) {
    *n = 0;
    if (!o || o->t != J_OBJ) return;
    for (size_t i = 0; i < o->n && *n < MAX_OVERRIDES; i++) {
        strncpy(dst[*n].fn, o->keys[i], sizeof dst[*n].fn - 1);
        dst[*n].value = (int64_t)o->items[i].num;
        (*n)++;
    }
}

static void load_locked(void) {
    const char *path = getenv("FAKE_NVML_CONFIG");
    struct stat st;
    if (!path || stat(path, &st) != 0) return;
    if (loaded && st.st_mtim.tv_sec == seen.st_mtim.tv_sec && st.st_mtim.tv_nsec == seen.st_mtim.tv_nsec
        && st.st_size == seen.st_size && st.st_ino == seen.st_ino) return;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    char *text = calloc(1, (size_t)st.st_size + 1);
    size_t got = text ? fread(text, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!text || got != (size_t)st.st_size) { free(text); return; }
    jv root; jp = text;
    if (jparse(&root) || root.t != J_OBJ) { fprintf(stderr, "fake_nvml: bad JSON in %s\n", path); free(text); jfree(&root); return; }
    memset(&cfg, 0, sizeof cfg);
    jstr(&root, "driver_version", cfg.driver, sizeof cfg.driver);
    jstr(&root, "nvml_version", cfg.nvml, sizeof cfg.nvml);
    cfg.cuda = jint(&root, "cuda_driver_version");
    cfg.init_error = jint(&root, "init_error");
    const jv *gpus = jget(&root, "gpus");
    for (size_t i = 0; gpus && gpus->t == J_ARR && i < gpus->n && i < MAX_GPUS; i++) {
        const jv *o = &gpus->items[i]; struct gpu *g = &cfg.gpus[cfg.n_gpus++];
        jstr(o, "uuid", g->uuid, sizeof g->uuid);
        jstr(o, "name", g->name, sizeof g->name);
        jstr(o, "pci_bus_id", g->pci_bus_id, sizeof g->pci_bus_id);
        jstr(o, "serial", g->serial, sizeof g->serial);
        g->pci_device_id = jint(o, "pci_device_id");  /* the PCI device id alone: 0x2330 */
        if (g->pci_device_id == ABSENT) g->pci_device_id = 0x2330;
        g->bar1_total_mib = jint(o, "bar1_total_mib");
        g->memory_total_mib = jint(o, "memory_total_mib"); g->memory_used_mib = jint(o, "memory_used_mib");
        g->util = jint(o, "utilization_pct"); g->mem_util = jint(o, "memory_utilization_pct");
        g->temp = jint(o, "temperature_c"); g->power_mw = jint(o, "power_draw_mw");
        g->power_limit_mw = jint(o, "power_limit_mw"); g->sm_clock = jint(o, "sm_clock_mhz");
        g->max_sm_clock = jint(o, "max_sm_clock_mhz"); g->max_mem_clock = jint(o, "max_memory_clock_mhz");
        g->fan = jint(o, "fan_pct"); g->pstate = jint(o, "pstate");
        g->ecc = jint(o, "ecc_uncorrected_volatile"); g->throttle = jint(o, "throttle_reasons");
        g->processes = jint(o, "processes"); g->persistence = jint(o, "persistence_mode");
        g->mig_mode = jint(o, "mig_mode"); g->xid_supported = jint(o, "xid_supported");
        const jv *cc = jget(o, "compute_capability");
        g->cc_major = g->cc_minor = ABSENT;
        if (cc && cc->t == J_ARR && cc->n == 2) { g->cc_major = (int64_t)cc->items[0].num; g->cc_minor = (int64_t)cc->items[1].num; }
        g->lost = jint(o, "lost") > 0;
        read_overrides(jget(o, "errors"), g->errors, &g->n_errors);
        read_overrides(jget(o, "hang_ms"), g->hangs, &g->n_hangs);
        const jv *migs = jget(o, "mig_devices");
        for (size_t m = 0; migs && migs->t == J_ARR && m < migs->n && m < MAX_MIG; m++) {
            const jv *mo = &migs->items[m]; struct mig *md = &g->migs[g->n_migs++];
            jstr(mo, "uuid", md->uuid, sizeof md->uuid);
            jstr(mo, "name", md->name, sizeof md->name);
            md->memory_total_mib = jint(mo, "memory_total_mib");
            md->gi = jint(mo, "gpu_instance_id"); md->ci = jint(mo, "compute_instance_id");
        }
    }
    const jv *events = jget(&root, "events");
    for (size_t i = 0; events && events->t == J_ARR && i < events->n && i < MAX_EVENTS; i++) {
        const jv *o = &events->items[i]; struct event *e = &cfg.events[cfg.n_events++];
        e->id = jint(o, "id"); e->gpu = jint(o, "gpu"); e->xid = jint(o, "xid");
    }
    jfree(&root); free(text);
    seen = st; loaded = 1;
}

static int64_t override_of(const struct override *o, int n, const char *fn) {
    for (int i = 0; i < n; i++) if (!strcmp(o[i].fn, fn)) return o[i].value;
    return 0;
}

/* Enter a device call: takes the lock (released by LEAVE), resolves the handle, applies faults. */
static nvmlReturn_t enter_device(const char *fn, nvmlDevice_t d, struct gpu **g, struct mig **m) {
    pthread_mutex_lock(&lock);
    load_locked();
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (!d || d->gpu < 0 || d->gpu >= cfg.n_gpus) return NVML_ERROR_INVALID_ARGUMENT;
    *g = &cfg.gpus[d->gpu];
    *m = NULL;
    if (d->mig >= 0) {
        if (d->mig >= (*g)->n_migs) return NVML_ERROR_INVALID_ARGUMENT;
        *m = &(*g)->migs[d->mig];
    }
    int64_t hang = override_of((*g)->hangs, (*g)->n_hangs, fn);
    if (hang > 0) {  /* sleep without the lock: other GPUs keep answering */
        pthread_mutex_unlock(&lock);
        struct timespec ts = { (time_t)(hang / 1000), (long)(hang % 1000) * 1000000L };
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&lock);
        load_locked();
        if (d->gpu >= cfg.n_gpus) return NVML_ERROR_GPU_IS_LOST;
        *g = &cfg.gpus[d->gpu];
        if (d->mig >= 0) {
            if (d->mig >= (*g)->n_migs) return NVML_ERROR_INVALID_ARGUMENT;
            *m = &(*g)->migs[d->mig];
        }
    }
    if ((*g)->lost) return NVML_ERROR_GPU_IS_LOST;
    int64_t forced = override_of((*g)->errors, (*g)->n_errors, fn);
    if (forced) return (nvmlReturn_t)forced;
    return NVML_SUCCESS;
}

#define DEVICE_CALL(fn, dev)                                   \
    struct gpu *g; struct mig *m;                              \
    nvmlReturn_t rc_ = enter_device(#fn, (dev), &g, &m);       \
    (void)m;                                                   \
    if (rc_ != NVML_SUCCESS) RETURN(rc_);
#define RETURN(x) do { nvmlReturn_t r__ = (x); pthread_mutex_unlock(&lock); return r__; } while (0)
#define VALUE(field, out, type) do {                           \
        if ((field) == ABSENT) RETURN(NVML_ERROR_NOT_SUPPORTED); \
        if (!(out)) RETURN(NVML_ERROR_INVALID_ARGUMENT);         \
        *(out) = (type)(field); RETURN(NVML_SUCCESS); } while (0)

static nvmlReturn_t copy_str(const char *src, char *dst, unsigned int len) {
    if (!src[0]) return NVML_ERROR_NOT_SUPPORTED;
    if (!dst || strlen(src) + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(dst, src, strlen(src) + 1);
    return NVML_SUCCESS;
}

/* ---- system ---- */
EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    pthread_mutex_lock(&lock);
    load_locked();
    if (cfg.init_error != ABSENT && cfg.init_error != 0) RETURN((nvmlReturn_t)cfg.init_error);
    initialised++;
    RETURN(NVML_SUCCESS);
}
EXPORT nvmlReturn_t nvmlShutdown(void) {
    pthread_mutex_lock(&lock);
    if (!initialised) RETURN(NVML_ERROR_UNINITIALIZED);
    initialised--;
    RETURN(NVML_SUCCESS);
}
EXPORT const char *nvmlErrorString(nvmlReturn_t r) {
    static char buf[64];
    snprintf(buf, sizeof buf, "fake NVML error %d", r);
    return buf;
}
EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *v, unsigned int len) {
    pthread_mutex_lock(&lock); load_locked(); RETURN(copy_str(cfg.driver, v, len));
}
EXPORT nvmlReturn_t nvmlSystemGetNVMLVersion(char *v, unsigned int len) {
    pthread_mutex_lock(&lock); load_locked(); RETURN(copy_str(cfg.nvml, v, len));
}
#ifndef OMIT_nvmlSystemGetCudaDriverVersion_v2
EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) {
    pthread_mutex_lock(&lock); load_locked(); VALUE(cfg.cuda, v, int);
}
#endif
EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) {
    pthread_mutex_lock(&lock); load_locked(); VALUE(cfg.cuda, v, int);
}
EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    pthread_mutex_lock(&lock); load_locked();
    if (!initialised) RETURN(NVML_ERROR_UNINITIALIZED);
    *count = (unsigned int)cfg.n_gpus; RETURN(NVML_SUCCESS);
}
EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    pthread_mutex_lock(&lock); load_locked();
    if (!initialised) RETURN(NVML_ERROR_UNINITIALIZED);
    if (index >= (unsigned int)cfg.n_gpus || !device) RETURN(NVML_ERROR_INVALID_ARGUMENT);
    if (cfg.gpus[index].lost) RETURN(NVML_ERROR_GPU_IS_LOST);
    dev_handles[index].gpu = (int)index; dev_handles[index].mig = -1;
    *device = &dev_handles[index];
    RETURN(NVML_SUCCESS);
}

/* ---- fingerprint ---- */
EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int len) {
    DEVICE_CALL(nvmlDeviceGetUUID, d); RETURN(copy_str(m ? m->uuid : g->uuid, uuid, len));
}
EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int len) {
    DEVICE_CALL(nvmlDeviceGetName, d); RETURN(copy_str(m ? m->name : g->name, name, len));
}
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *mem) {
    DEVICE_CALL(nvmlDeviceGetMemoryInfo, d);
    int64_t total = m ? m->memory_total_mib : g->memory_total_mib;
    int64_t used = m ? 0 : g->memory_used_mib;
    if (total == ABSENT) RETURN(NVML_ERROR_NOT_SUPPORTED);
    if (used == ABSENT) used = 0;
    mem->total = (unsigned long long)total * MIB;
    mem->used = (unsigned long long)used * MIB;  /* v1 semantics: reserved counted as used */
    mem->free = mem->total - mem->used;
    RETURN(NVML_SUCCESS);
}
#ifndef OMIT_nvmlDeviceGetMemoryInfo_v2
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *mem) {
    DEVICE_CALL(nvmlDeviceGetMemoryInfo_v2, d);
    if (!mem || mem->version != NVML_MEMORY_V2) RETURN(NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
    int64_t total = m ? m->memory_total_mib : g->memory_total_mib;
    int64_t used = m ? 0 : g->memory_used_mib;
    if (total == ABSENT) RETURN(NVML_ERROR_NOT_SUPPORTED);
    if (used == ABSENT) used = 0;
    mem->total = (unsigned long long)total * MIB;
    mem->reserved = 0;
    mem->used = (unsigned long long)used * MIB;
    mem->free = mem->total - mem->used;
    RETURN(NVML_SUCCESS);
}
#endif
EXPORT nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t d, int *major, int *minor) {
    DEVICE_CALL(nvmlDeviceGetCudaComputeCapability, d);
    if (g->cc_major == ABSENT) RETURN(NVML_ERROR_NOT_SUPPORTED);
    *major = (int)g->cc_major; *minor = (int)g->cc_minor; RETURN(NVML_SUCCESS);
}
EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *pci) {
    DEVICE_CALL(nvmlDeviceGetPciInfo_v3, d);
    if (!g->pci_bus_id[0]) RETURN(NVML_ERROR_NOT_SUPPORTED);
    memset(pci, 0, sizeof *pci);
    snprintf(pci->busId, sizeof pci->busId, "%s", g->pci_bus_id);
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%.15s", g->pci_bus_id);
    pci->pciDeviceId = ((unsigned int)g->pci_device_id << 16) | 0x10DEu;  /* device | vendor */
    RETURN(NVML_SUCCESS);
}
EXPORT nvmlReturn_t nvmlDeviceGetSerial(nvmlDevice_t d, char *serial, unsigned int len) {
    DEVICE_CALL(nvmlDeviceGetSerial, d); RETURN(copy_str(g->serial, serial, len));
}
EXPORT nvmlReturn_t nvmlDeviceGetBAR1MemoryInfo(nvmlDevice_t d, nvmlBAR1Memory_t *bar1) {
    DEVICE_CALL(nvmlDeviceGetBAR1MemoryInfo, d);
    if (g->bar1_total_mib == ABSENT) RETURN(NVML_ERROR_NOT_SUPPORTED);
    bar1->bar1Total = (unsigned long long)g->bar1_total_mib * MIB;
    bar1->bar1Used = 0;
    bar1->bar1Free = bar1->bar1Total;
    RETURN(NVML_SUCCESS);
}
EXPORT nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t d, unsigned int *limit) {
    DEVICE_CALL(nvmlDeviceGetEnforcedPowerLimit, d); VALUE(g->power_limit_mw, limit, unsigned int);
}
EXPORT nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t d, int type, unsigned int *clock) {
    DEVICE_CALL(nvmlDeviceGetMaxClockInfo, d);
    if (type == 1) VALUE(g->max_sm_clock, clock, unsigned int);
    if (type == 2) VALUE(g->max_mem_clock, clock, unsigned int);
    RETURN(NVML_ERROR_NOT_SUPPORTED);
}
EXPORT nvmlReturn_t nvmlDeviceGetPersistenceMode(nvmlDevice_t d, unsigned int *mode) {
    DEVICE_CALL(nvmlDeviceGetPersistenceMode, d); VALUE(g->persistence, mode, unsigned int);
}
EXPORT nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *current, unsigned int *pending) {
    DEVICE_CALL(nvmlDeviceGetMigMode, d);
    if (g->mig_mode == ABSENT) RETURN(NVML_ERROR_NOT_SUPPORTED);
    *current = *pending = (unsigned int)g->mig_mode; RETURN(NVML_SUCCESS);
}
EXPORT nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t d, unsigned int *count) {
    DEVICE_CALL(nvmlDeviceGetMaxMigDeviceCount, d);
    if (g->mig_mode != 1) RETURN(NVML_ERROR_NOT_SUPPORTED);
    *count = MAX_MIG; RETURN(NVML_SUCCESS);
}
EXPORT nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t d, unsigned int index, nvmlDevice_t *mig) {
    DEVICE_CALL(nvmlDeviceGetMigDeviceHandleByIndex, d);
    if (index >= (unsigned int)g->n_migs) RETURN(NVML_ERROR_NOT_FOUND);
    mig_handles[d->gpu][index].gpu = d->gpu; mig_handles[d->gpu][index].mig = (int)index;
    *mig = &mig_handles[d->gpu][index];
    RETURN(NVML_SUCCESS);
}
EXPORT nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t d, unsigned int *id) {
    DEVICE_CALL(nvmlDeviceGetGpuInstanceId, d);
    if (!m) RETURN(NVML_ERROR_INVALID_ARGUMENT);
    VALUE(m->gi, id, unsigned int);
}
EXPORT nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t d, unsigned int *id) {
    DEVICE_CALL(nvmlDeviceGetComputeInstanceId, d);
    if (!m) RETURN(NVML_ERROR_INVALID_ARGUMENT);
    VALUE(m->ci, id, unsigned int);
}

/* ---- sample ---- */
EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    DEVICE_CALL(nvmlDeviceGetUtilizationRates, d);
    if (m || g->util == ABSENT) RETURN(NVML_ERROR_NOT_SUPPORTED);
    u->gpu = (unsigned int)g->util;
    u->memory = g->mem_util == ABSENT ? 0u : (unsigned int)g->mem_util;
    RETURN(NVML_SUCCESS);
}
#ifndef OMIT_nvmlDeviceGetTemperatureV
EXPORT nvmlReturn_t nvmlDeviceGetTemperatureV(nvmlDevice_t d, nvmlTemperature_v1_t *t) {
    DEVICE_CALL(nvmlDeviceGetTemperatureV, d);
    if (!t || t->version != NVML_TEMPERATURE_V1) RETURN(NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
    if (t->sensorType != 0 || g->temp == ABSENT) RETURN(NVML_ERROR_NOT_SUPPORTED);
    t->temperature = (int)g->temp; RETURN(NVML_SUCCESS);
}
#endif
EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *temp) {
    DEVICE_CALL(nvmlDeviceGetTemperature, d);
    if (sensor != 0) RETURN(NVML_ERROR_NOT_SUPPORTED);
    VALUE(g->temp, temp, unsigned int);
}
EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw) {
    DEVICE_CALL(nvmlDeviceGetPowerUsage, d); VALUE(g->power_mw, mw, unsigned int);
}
EXPORT nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, int type, unsigned int *clock) {
    DEVICE_CALL(nvmlDeviceGetClockInfo, d);
    if (type == 1) VALUE(g->sm_clock, clock, unsigned int);
    RETURN(NVML_ERROR_NOT_SUPPORTED);
}
EXPORT nvmlReturn_t nvmlDeviceGetFanSpeed(nvmlDevice_t d, unsigned int *pct) {
    DEVICE_CALL(nvmlDeviceGetFanSpeed, d); VALUE(g->fan, pct, unsigned int);
}
EXPORT nvmlReturn_t nvmlDeviceGetPerformanceState(nvmlDevice_t d, unsigned int *pstate) {
    DEVICE_CALL(nvmlDeviceGetPerformanceState, d); VALUE(g->pstate, pstate, unsigned int);
}
EXPORT nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, int type, int counter, unsigned long long *n) {
    DEVICE_CALL(nvmlDeviceGetTotalEccErrors, d);
    if (type != 1 || counter != 0) RETURN(NVML_ERROR_NOT_SUPPORTED);  /* uncorrected, volatile */
    VALUE(g->ecc, n, unsigned long long);
}
#ifndef OMIT_nvmlDeviceGetCurrentClocksEventReasons
EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t d, unsigned long long *r) {
    DEVICE_CALL(nvmlDeviceGetCurrentClocksEventReasons, d); VALUE(g->throttle, r, unsigned long long);
}
#endif
EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t d, unsigned long long *r) {
    DEVICE_CALL(nvmlDeviceGetCurrentClocksThrottleReasons, d); VALUE(g->throttle, r, unsigned long long);
}
static nvmlReturn_t processes(struct gpu *g, unsigned int *count, nvmlProcessInfo_t *infos) {
    if (g->processes == ABSENT) return NVML_ERROR_NOT_SUPPORTED;
    unsigned int n = (unsigned int)g->processes;
    if (n == 0) { *count = 0; return NVML_SUCCESS; }
    if (!infos || *count < n) { *count = n; return NVML_ERROR_INSUFFICIENT_SIZE; }
    for (unsigned int i = 0; i < n; i++) {
        infos[i].pid = 1000 + i; infos[i].usedGpuMemory = 256 * MIB;
        infos[i].gpuInstanceId = infos[i].computeInstanceId = NO_INSTANCE;
    }
    *count = n;
    return NVML_SUCCESS;
}
#ifndef OMIT_nvmlDeviceGetComputeRunningProcesses_v3
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *count, nvmlProcessInfo_t *infos) {
    DEVICE_CALL(nvmlDeviceGetComputeRunningProcesses_v3, d); RETURN(processes(g, count, infos));
}
#endif
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t d, unsigned int *count, nvmlProcessInfo_t *infos) {
    DEVICE_CALL(nvmlDeviceGetComputeRunningProcesses_v2, d); RETURN(processes(g, count, infos));
}

/* ---- events ---- */
EXPORT nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < sizeof event_sets / sizeof event_sets[0]; i++) {
        if (!event_sets[i].live) {
            memset(&event_sets[i], 0, sizeof event_sets[i]);
            event_sets[i].live = 1;
            load_locked();
            for (int e = 0; e < cfg.n_events; e++)  /* only events that arrive after creation */
                if (cfg.events[e].id > event_sets[i].delivered) event_sets[i].delivered = cfg.events[e].id;
            *set = &event_sets[i];
            RETURN(NVML_SUCCESS);
        }
    }
    RETURN(NVML_ERROR_MEMORY);
}
EXPORT nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
    pthread_mutex_lock(&lock);
    if (!set || !set->live) RETURN(NVML_ERROR_INVALID_ARGUMENT);
    set->live = 0; RETURN(NVML_SUCCESS);
}
EXPORT nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t d, unsigned long long *types) {
    DEVICE_CALL(nvmlDeviceGetSupportedEventTypes, d);
    if (g->xid_supported == 0) RETURN(NVML_ERROR_NOT_SUPPORTED);
    *types = XID_CRITICAL | 0x3ULL; RETURN(NVML_SUCCESS);
}
EXPORT nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d, unsigned long long types, nvmlEventSet_t set) {
    DEVICE_CALL(nvmlDeviceRegisterEvents, d);
    if (!set || !set->live || m) RETURN(NVML_ERROR_INVALID_ARGUMENT);
    set->mask[d->gpu] |= types; RETURN(NVML_SUCCESS);
}
EXPORT nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeout_ms) {
    (void)timeout_ms;  /* never blocks: a test would rather fail fast than wait */
    pthread_mutex_lock(&lock);
    load_locked();
    if (!set || !set->live || !data) RETURN(NVML_ERROR_INVALID_ARGUMENT);
    const struct event *next = NULL;
    for (int e = 0; e < cfg.n_events; e++) {
        const struct event *ev = &cfg.events[e];
        if (ev->id <= set->delivered || ev->gpu < 0 || ev->gpu >= cfg.n_gpus) continue;
        if (!(set->mask[ev->gpu] & XID_CRITICAL)) continue;
        if (!next || ev->id < next->id) next = ev;
    }
    if (!next) RETURN(NVML_ERROR_TIMEOUT);
    set->delivered = next->id;
    dev_handles[next->gpu].gpu = (int)next->gpu; dev_handles[next->gpu].mig = -1;
    data->device = &dev_handles[next->gpu];
    data->eventType = XID_CRITICAL;
    data->eventData = (unsigned long long)next->xid;
    data->gpuInstanceId = data->computeInstanceId = NO_INSTANCE;
    RETURN(NVML_SUCCESS);
}
