/*
 * hiredis on the libuv loop: the event hooks of hiredis/adapters/libuv.h, with one change.
 * Debian 12's copy (hiredis 0.14) returns early when libuv reports an error on the socket
 * (POLLERR, e.g. Redis killed while a command was being written): libuv has then stopped
 * watching it and hiredis never hears that the connection died, so every call out waits
 * forever. Here an error makes hiredis read, which fails and tears the connection down.
 */
#include "cluster_internal.h"

#include <stdbool.h>
#include <stdlib.h>

struct uv_events {
    redisAsyncContext *context;
    uv_poll_t handle;
    int events;
};

static void on_poll(uv_poll_t *handle, int status, int events)
{
    struct uv_events *p = handle->data;
    if (status != 0) {
        if (p->context)
            redisAsyncHandleRead(p->context); /* fails: hiredis disconnects */
        return;
    }
    if (p->context && (events & UV_READABLE))
        redisAsyncHandleRead(p->context);
    if (p->context && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->context);
}

static void set_events(struct uv_events *p, int events)
{
    p->events = events;
    if (events)
        uv_poll_start(&p->handle, events, on_poll);
    else
        uv_poll_stop(&p->handle);
}

static void add_read(void *arg)
{
    struct uv_events *p = arg;
    set_events(p, p->events | UV_READABLE);
}

static void del_read(void *arg)
{
    struct uv_events *p = arg;
    set_events(p, p->events & ~UV_READABLE);
}

static void add_write(void *arg)
{
    struct uv_events *p = arg;
    set_events(p, p->events | UV_WRITABLE);
}

static void del_write(void *arg)
{
    struct uv_events *p = arg;
    set_events(p, p->events & ~UV_WRITABLE);
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

static void cleanup(void *arg)
{
    struct uv_events *p = arg;
    p->context = NULL; /* the context is going */
    uv_close((uv_handle_t *)&p->handle, on_closed);
}

int cluster_uv_attach(redisAsyncContext *ac, uv_loop_t *loop, bool background)
{
    struct uv_events *p;
    if (ac->ev.data)
        return REDIS_ERR;
    if (!(p = calloc(1, sizeof(*p))))
        return REDIS_ERR;
    if (uv_poll_init(loop, &p->handle, ac->c.fd) != 0) {
        free(p);
        return REDIS_ERR;
    }
    if (background)
        uv_unref((uv_handle_t *)&p->handle);
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = p;
    p->handle.data = p;
    p->context = ac;
    return REDIS_OK;
}

void cluster_uv_unref(redisAsyncContext *ac)
{
    struct uv_events *p = ac->ev.data;
    if (p)
        uv_unref((uv_handle_t *)&p->handle);
}
