/*
 * The connection core's own interface: what the files that make up a
 * client connection call of each other.  Users of a connection (the Lua
 * binding, the engine, the proxy tunnel) use wsbeat.h only.
 *
 *   conn.c       state, events for Lua, the end of an attempt, close, free
 *   attempt.c    name resolution, the proxy or a direct connect, admission
 *   retry.c      the retry policy and backoff (pure)
 *   heartbeat.c  deadlines on one timer, probes, pongs, stall checks
 *   send.c       the send queue, direct writes, PINGs, WRITEABLE
 *   cork.c       batching what callbacks send
 *   recv.c       reassembly, limits, the receive queue, flow control
 *   opening.c    a client's opening handshake (raw socket)
 *   tlsio.c      TLS (a wss:// client's, a wss server's), on memory BIOs
 *   wsrx.c       the frames, both roles (read by wsbeat, not lws)
 *   callback.c   the libwebsockets callback
 */
#ifndef WSBEAT_CONN_H
#define WSBEAT_CONN_H

#include <stdarg.h>

#include "wsbeat.h"

#define TX_CHUNK WSB_TX_CHUNK /* fragment size: a probe never waits longer */
#define DIRECT_MAX 16384 /* largest message written straight from send() */

/* conn.c */
void wsb_set_state(struct wsb_client *c, enum wsb_state st, const char *cause,
		   char *reason, int code, int status, double delay,
		   int unsent);
void wsb_push_simple(struct wsb_client *c, enum wsb_ev_kind kind,
		     struct wsb_msg *m);
void wsb_lost(struct wsb_client *c, const char *cause, int code, int status,
	      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void wsb_vlost(struct wsb_client *c, const char *cause, int code,
	       int status, const char *fmt, va_list ap);
void wsb_end_attempt(struct wsb_client *c);
void wsb_finish_closed(struct wsb_client *c, const char *cause, int code,
		       char *reason);
void wsb_finish_user_close(struct wsb_client *c);

/* attempt.c */
void wsb_detach_wsi(struct wsb_client *c);
void wsb_cancel_dns(struct wsb_client *c);
void wsb_attempt_over(struct wsb_client *c);
void wsb_connect_failed(struct wsb_client *c); /* inside lws's connect call */
void wsb_connect_lws(struct wsb_client *c, const char *address);

/* heartbeat.c */
void wsb_hb_restart(struct wsb_client *c, double now);
void wsb_heard(struct wsb_client *c);
size_t wsb_stamp_payload(unsigned char *p);
void wsb_on_pong(struct wsb_client *c, const unsigned char *in, size_t len);

/* send.c */
const unsigned char *wsb_mask_key(struct wsb_engine *e);
int wsb_frame_key(struct wsb_client *c, const unsigned char **key);
int wsb_write_frame(struct wsb_client *c, struct lws *wsi, unsigned first,
		    unsigned char *p, const unsigned char *src, size_t len);
int wsb_ping_now(struct wsb_client *c, const unsigned char *payload,
		 size_t len);
struct wsb_msg *wsb_msg_out(const char *data, size_t len, int binary);
void wsb_request_writable(struct wsb_client *c);
void wsb_tx_drop_partial(struct wsb_client *c);
int wsb_on_writeable(struct wsb_client *c, struct lws *wsi);

/* cork.c */
void wsb_cork_requeue(struct wsb_client *c);
void wsb_cork_free(struct wsb_client *c);
int wsb_uncork(struct wsb_client *c);
int wsb_cork_add(struct wsb_client *c, unsigned first,
		 const unsigned char *src, size_t len);

/* recv.c */
void wsb_rx_reset(struct wsb_client *c);
int wsb_rx_append(struct wsb_client *c, const unsigned char *in, size_t len);
void wsb_rx_deliver(struct wsb_client *c);

/* callback.c */
void wsb_client_established(struct wsb_client *c, struct lws *wsi);
void wsb_client_lost_no_cert(struct wsb_client *c);

/* opening.c (a client's handshake) */
int wsb_opening_start(struct wsb_client *c, struct lws *wsi);
int wsb_raw_rx(struct wsb_client *c, struct lws *wsi, unsigned char *in,
	       size_t len);
void wsb_opening_free(struct wsb_client *c);

/* tlsio.c (TLS on memory BIOs; a server's pending side is in wsbeat.h) */
int wsb_tlsio_start(struct wsb_client *c, struct lws *wsi);
int wsb_tlsio_rx(struct wsb_client *c, struct lws *wsi, unsigned char *in,
		 size_t len);
int wsb_tlsio_lost(struct wsb_client *c, struct lws *wsi);
int wsb_raw_write(struct wsb_client *c, struct lws *wsi,
		  const unsigned char *p, size_t n);
void wsb_tlsio_free(struct wsb_client *c);
void *wsb_tlsio_ssl(const struct wsb_client *c);

/* wsrx.c (the frames wsbeat reads itself) */
struct wsb_pmd_params;
int wsb_wsrx_new(struct wsb_client *c, const struct wsb_pmd_params *pp);
void wsb_wsrx_free(struct wsb_client *c);
void wsb_wsrx_release(struct wsb_client *c);
int wsb_wsrx_draining(const struct wsb_client *c);
void wsb_wsrx_lost(struct wsb_client *c);
int wsb_wsrx_feed(struct wsb_client *c, unsigned char *in, size_t len);
int wsb_wsrx_resume(struct wsb_client *c);
unsigned char *wsb_wsrx_deflate(struct wsb_client *c, const unsigned char *in,
				 size_t n, size_t *zlen);

#endif
