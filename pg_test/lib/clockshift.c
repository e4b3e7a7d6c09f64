/*
 * clockshift: moves the wall clock of every process it is preloaded into by a fixed offset,
 * so a whole PostgreSQL cluster (postmaster, backends and background workers alike) lives on
 * another calendar date while the clock keeps running at its normal pace.
 *
 *   LD_PRELOAD=/path/clockshift.so FLOE_CLOCK_OFFSET=<seconds> pg_ctl start ...
 *
 * Only the real-time clock moves (CLOCK_REALTIME and its variants, gettimeofday, time):
 * monotonic clocks, which PostgreSQL uses for timeouts and latches, are left alone. Every
 * process reads the same offset from the environment it inherited, so all of them agree.
 *
 * libfaketime was tried first (Debian's 0.9.10, FAKETIME="@..." on pg_ctl start): client
 * backends, checkpointer and bgwriter got the fake date, but walwriter, the autovacuum
 * launcher and floe's launcher and scheduler kept the real one (their backend_start showed
 * today), so scheduled jobs never came due on the fake calendar.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long long offset_s;
static int offset_read;

static long long
offset(void)
{
    if (!offset_read)
    {
        const char *v = getenv("FLOE_CLOCK_OFFSET");

        offset_s = v ? atoll(v) : 0;
        offset_read = 1;
    }
    return offset_s;
}

static int
is_wall_clock(clockid_t id)
{
    return id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE;
}

int
clock_gettime(clockid_t id, struct timespec *ts)
{
    static int (*real) (clockid_t, struct timespec *);
    int         rc;

    if (!real)
        real = (int (*) (clockid_t, struct timespec *)) dlsym(RTLD_NEXT, "clock_gettime");
    rc = real(id, ts);
    if (rc == 0 && ts && is_wall_clock(id))
        ts->tv_sec += offset();
    return rc;
}

int
gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    static int (*real) (struct timeval *restrict, void *restrict);
    int         rc;

    if (!real)
        real = (int (*) (struct timeval *restrict, void *restrict)) dlsym(RTLD_NEXT, "gettimeofday");
    rc = real(tv, tz);
    if (rc == 0 && tv)
        tv->tv_sec += offset();
    return rc;
}

time_t
time(time_t *out)
{
    struct timespec ts;
    time_t      now;

    clock_gettime(CLOCK_REALTIME, &ts);
    now = ts.tv_sec;
    if (out)
        *out = now;
    return now;
}
