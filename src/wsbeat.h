/*
 * wsbeat: shared declarations of the C core (module wsbeat.core).
 *
 * The core never calls into Lua from inside libuv or libwebsockets
 * callbacks.  Those callbacks only change C state and append events to the
 * engine's FIFO; the Lua layer drains the FIFO from step(), outside every
 * library frame, so a Lua error can never unwind through libwebsockets.
 */
#ifndef WSBEAT_H
#define WSBEAT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h> /* the one idiom for lists */

#include <uv.h>
#include <libwebsockets.h>

#include "compat.h" /* lua.h, lauxlib.h, and what 5.1-5.3 lack */

#define WSB_VERSION "0.1.0"
#define WSB_CLIENT_MT "wsbeat.client"
#define WSB_CONN_MT "wsbeat.conn"      /* a server's connection */
#define WSB_SERVER_MT "wsbeat.server"
#define WSB_ENGINE_MT "wsbeat.engine"

/* ------------------------------------------------------------------ url.c */

#define WSB_HOST_MAX 256
#define WSB_PATH_MAX 4096

struct wsb_url {
	int tls;                 /* wss:// */
	int port;
	int ipv6;                /* host is a bracketed IPv6 literal */
	char host[WSB_HOST_MAX]; /* without brackets */
	char path[WSB_PATH_MAX]; /* path and query, at least "/" */
};

/* 0 on success; otherwise -1 and a message in err. */
int wsb_url_parse(const char *s, size_t len, struct wsb_url *u, char *err,
		  size_t errlen);
/* 1 when s is an IPv4 or IPv6 address literal (no brackets). */
int wsb_is_ip_literal(const char *s);

/* ----------------------------------------------------------------- states */

enum wsb_state {
	WSB_CONNECTING,
	WSB_OPEN,
	WSB_RECONNECTING,
	WSB_CLOSING,
	WSB_CLOSED
};

extern const char *const wsb_state_names[];

/* Frames built once for many connections (server:broadcast). */
struct wsb_shared {
	size_t refs;
	size_t len;              /* bytes of frames */
	unsigned char buf[];     /* LWS_PRE + the frames */
};

/* A message held by the core: outgoing (send queue) or incoming. */
struct wsb_msg {
	STAILQ_ENTRY(wsb_msg) link; /* in one queue at a time: tx, rx or none */
	size_t len;
	size_t off;      /* outgoing: bytes already handed to lws */
	int binary;
	struct wsb_shared *shared; /* framed already: data is its frames */
	unsigned char *data; /* outgoing: points LWS_PRE into buf */
	unsigned char *z;    /* outgoing, server permessage-deflate: the
				deflated payload (LWS_PRE + zlen), or NULL */
	size_t zlen;
	unsigned char buf[]; /* LWS_PRE + len (outgoing) or len (incoming) */
};

void wsb_msg_free(struct wsb_msg *m);

STAILQ_HEAD(wsb_msgq, wsb_msg);

/* Everything needed to describe one state transition to Lua. */
struct wsb_info {
	const char *cause;   /* static token */
	char *reason;        /* malloc'd */
	int code;            /* close code, 0 = none */
	int status;          /* HTTP status, 0 = none */
	int attempt;
	double delay;        /* < 0: none */
	int unsent;          /* -1: not reported */
	int retry;           /* DECIDE: the default policy's verdict */
};

enum wsb_ev_kind { WSB_EV_MESSAGE, WSB_EV_STATE, WSB_EV_ATTEMPT,
		   WSB_EV_DECIDE };

struct wsb_event {
	STAILQ_ENTRY(wsb_event) link;
	enum wsb_ev_kind kind;
	struct wsb_client *c;
	struct wsb_msg *msg;      /* MESSAGE */
	enum wsb_state state;     /* STATE */
	enum wsb_state previous;  /* STATE */
	struct wsb_info info;     /* STATE */
};

struct wsb_tlsconf;
struct wsb_srvhost;
struct wsb_wsrx;
struct wsb_server;

struct wsb_engine {
	uv_loop_t loop;
	struct lws_context *ctx;
	struct wsb_tlsconf *vhosts;  /* one lws vhost per TLS setup */
	struct wsb_srvhost *srvhosts; /* the same for servers (server.c) */
	LIST_HEAD(, wsb_server) servers; /* every server not yet freed */
	void *lua;                   /* the lua_State inside service, for
					on_upgrade (which must answer at once) */
	STAILQ_HEAD(, wsb_event) events; /* for Lua, in order */
	LIST_HEAD(, wsb_client) clients;  /* every client not yet freed */
	size_t live;                 /* clients not in state "closed" */
	LIST_HEAD(, wsb_client) deferred; /* clients with work for after uv_run */
	/* connection attempts: at most WSB_MAX_ATTEMPTS at once, others wait */
	size_t attempts;
	TAILQ_HEAD(, wsb_client) admit_q; /* waiting for a slot, in order */
	int admitting;
	int in_service;              /* inside uv_run: lws frames on the stack */
	int peek_ok;                 /* libuv's watcher queue reads as expected */
	uv_idle_t *lws_idle;         /* lws's forced-service handle (engine.c) */
	uv_idle_cb lws_idle_cb;
	uv_async_t kick;             /* makes the fd readable after API calls */
	uv_timer_t wait_timer;       /* bounds core.wait()'s blocking uv_run */
	int wait_over;               /* wait_timer expired in this core.wait */
	uv_timer_t hot_timer;        /* caps a blocking wait just after work */
	int hot;                     /* the last turn delivered something */
	int kicked;
	unsigned news;               /* bumped by anything queued for Lua */
	unsigned char masks[256];    /* frame mask keys from OpenSSL's DRBG */
	unsigned masks_left;         /* bytes of masks[] not yet used */
	unsigned char *tls_out;      /* TLS records on their way to lws */
	size_t tls_out_cap;
	int corking;                 /* Lua is delivering a batch of events */
	int polled;                  /* polls for more input in this batch */
	int batched;                 /* events delivered in this batch */
	LIST_HEAD(, wsb_client) corked; /* clients with frames in cork.buf */
	LIST_HEAD(, wsb_wsrx) failing; /* server connections to fail after
					   the batch (wsrx.c) */
	int destroyed;
	struct wsb_waker *waker;     /* a thread that wakes nginx (waker.c) */
	uint64_t started_ns;
	/* logging (log.c) */
	int log_level;               /* -1 = off, else WSB_LOG_* */
	int log_to_stderr;
	STAILQ_HEAD(, wsb_logline) log_lines;
	size_t log_count, log_dropped;
	/* totals of clients already freed, for wsbeat.stats() */
	uint64_t gone_msgs_sent, gone_msgs_recv, gone_bytes_sent,
		 gone_bytes_recv, gone_reconnects;
};

/* -------------------------------------------------------------------- log */
enum { WSB_LOG_ERROR, WSB_LOG_WARN, WSB_LOG_INFO, WSB_LOG_DEBUG };
void wsb_log(struct wsb_engine *e, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void wsb_log_configure(struct wsb_engine *e, int level, int to_stderr);
void wsb_log_release(struct wsb_engine *e);
int wsb_l_next_log(lua_State *L);
int wsb_l_set_log(lua_State *L);

/* Options the Lua layer has validated and hands to the core. */
struct wsb_opts {
	double connect_timeout, close_timeout;
	size_t max_message_size, max_queue, send_buffer;
	int compression;
	int verify;
	char *ca_file, *ca_path, *cert_file, *key_file, *server_name;
	char *protocols;   /* comma separated, or NULL */
	char *origin;
	/* reconnect */
	int reconnect;
	double rc_delay, rc_max_delay, rc_factor, rc_jitter, rc_min_uptime;
	double rc_max_attempts;
	int rc_has_retry;  /* reconnect.retry is a Lua function */
	/* heartbeat */
	int heartbeat;
	double hb_interval, hb_timeout;
	int hb_message_mode;
	char *hb_message;
	size_t hb_message_len;
};

/* deferred work bits (done after uv_run returns, outside lws callbacks) */
#define WSB_DEF_CLOSE     0x01 /* start the close handshake on the wsi */
#define WSB_DEF_RXPAUSE   0x02 /* switch off reading (max_queue reached) */
#define WSB_DEF_HARDCLOSE 0x04 /* drop the wsi without a close handshake */

#define WSB_CLIENT_MAGIC 0x77736263u /* first field of both wsi user types */

/* ------------------------------------------------------------------ proxy */

enum wsb_proxy_kind { WSB_PROXY_NONE, WSB_PROXY_HTTP, WSB_PROXY_SOCKS5,
		      WSB_PROXY_SOCKS5H };

/* The proxy of the current attempt, as the Lua layer chose it. */
struct wsb_proxy {
	enum wsb_proxy_kind kind;
	int port;
	char host[WSB_HOST_MAX];
	char display[WSB_HOST_MAX + 32]; /* scheme://host:port, no password */
	char *user, *pass;               /* NULL: none */
};

struct wsb_tunnel;

/* The send side: the queue, what lws holds, PINGs owed. */
struct wsb_tx {
	struct wsb_msgq q;
	struct wsb_msg *prio;     /* last message sent from on_state "open" */
	size_t bytes, count;
	int started;              /* head partly written */
	size_t dropped;           /* messages lost with a torn attempt */
	int open_gate;            /* "open" not yet delivered: queue held */
	int write_requested;      /* WRITEABLE asked for, not yet delivered */
	int close_after_flush;    /* close() waits for the send queue */
	int ping_pending;         /* a PING waits for WRITEABLE */
	int ping_is_probe;
	unsigned char ping_payload[125];
	size_t ping_len;
	int zsend;                /* our permessage-deflate (wsrx.c): messages
				     are deflated as they start on the wire */
	int pong_pending;         /* we read frames: a PONG waits for WRITEABLE */
	unsigned char pong_payload[125];
	size_t pong_len;
};

/* Frames sent from callbacks, written when the batch is delivered. */
struct wsb_cork {
	unsigned char *buf;
	size_t len, cap, msgs, bytes;
	LIST_ENTRY(wsb_client) link; /* engine->corked, while listed */
	int listed;
};

/* The receive side: reassembly and the queue for receive(). */
struct wsb_rx {
	unsigned char *buf;       /* the message being reassembled */
	size_t len, cap;
	int binary;
	int in_msg;
	int paused;               /* reading switched off (max_queue) */
	struct wsb_msgq q;        /* queued for receive() */
	size_t q_count;
	uint32_t utf8;            /* UTF-8 check state (wsrx.c) */
	/* the frame reader (wsrx.c), from the upgrade on */
	struct wsb_wsrx *own;
};

/* The heartbeat: deadlines, and pongs for the RTT. */
struct wsb_hb {
	double t_probe, t_dead;   /* 0 = unset */
	unsigned char uping[125]; /* payload of the last ws:ping(), for RTT */
	size_t uping_len;         /* 0: none outstanding */
	uint64_t uping_t;
	double rtt;               /* < 0: none yet */
};

/* Where an attempt waits for a slot (WSB_MAX_ATTEMPTS). */
enum wsb_admit { WSB_ADMIT_NONE, WSB_ADMIT_QUEUED, WSB_ADMIT_HOLDS_SLOT };

/* The attempt under way: its way to the server and how it ended. */
struct wsb_attempt {
	struct wsb_dns *dns;      /* pending resolution, or NULL */
	struct wsb_proxy proxy;   /* this attempt's proxy (kind NONE: direct) */
	char *proxy_error;        /* the proxy could not be chosen: why */
	struct wsb_tunnel *tunnel;/* the way through the proxy, or NULL */
	enum wsb_admit admit;
	TAILQ_ENTRY(wsb_client) admit_link; /* engine->admit_q, when queued */
	char admit_addr[64];      /* where the attempt goes (queued or not) */
	double t_connect;         /* connect_timeout deadline, 0 = unset */
	int done;                 /* this attempt already ended */
	int retry_after;          /* seconds, -1 = none */
	char tls_err[256];
	int cert_unanswered;      /* the server asked for a client cert */
	int in_connect;           /* inside lws_client_connect_via_info() */
	void *ssl_ctx;            /* wss://: the SSL_CTX (the engine's) */
};

/* The close handshake: ours, or the peer's. */
struct wsb_close {
	int code;                 /* what we send */
	char reason[124];
	size_t reason_len;
	const char *cause;        /* we close because of this (too_big...) */
	const char *by;           /* who asked: NULL = the user
				     ("closed_by_user"), "server_closed",
				     "slow_consumer" */
	double t_close;           /* close_timeout deadline, 0 = unset */
	int sent;                 /* our close frame is written */
	int peer_closed;          /* the peer's close came first: echoed */
	int peer_code;
	char peer_reason[124];
};

/* A loss waiting for reconnect.retry's verdict (from Lua). */
struct wsb_decide {
	const char *cause;        /* NULL: nothing waits */
	char *reason;
	int code, status;
};

struct wsb_client {
	uint32_t magic;
	struct wsb_engine *e;
	struct wsb_server *srv;           /* server role: its server, else NULL */
	LIST_ENTRY(wsb_client) srv_link;  /* srv->conns */
	struct wsb_request *req;          /* server role: the upgrade request */
	int server_role;                  /* accepted, not connected out */
	LIST_ENTRY(wsb_client) link;      /* engine->clients */
	LIST_ENTRY(wsb_client) def_link;  /* engine->deferred, while deferred */
	unsigned deferred;                /* WSB_DEF_* */
	void **udp;                       /* the Lua userdata's pointer slot */

	struct wsb_url url;
	struct wsb_opts o;
	char *headers;       /* "name\0value\0..." for the current attempt */
	size_t headers_len;
	char host_hdr[WSB_HOST_MAX + 16];
	int has_on_message;

	enum wsb_state st;        /* real state */
	enum wsb_state pub_state; /* last state the Lua side was told */
	struct lws *wsi;
	uv_timer_t timer;         /* one timer, for the nearest deadline */
	double t_retry;           /* reconnect deadline, 0 = unset */
	double armed_at;          /* deadline the timer is armed for, 0 = none */
	int attempt;              /* consecutive failures */
	int opened_once;
	char protocol[64];
	struct wsb_opening *opening; /* a client's upgrade under way */
	struct wsb_tlsio *tlsio;     /* wss: the TLS (tlsio.c) */

	struct wsb_attempt at;
	struct wsb_close close;
	struct wsb_decide decide;
	struct wsb_tx tx;
	struct wsb_cork cork;
	struct wsb_rx rx;
	struct wsb_hb hb;

	/* stats */
	uint64_t msgs_sent, msgs_recv, bytes_sent, bytes_recv, reconnects;
	double connected_at;     /* wall-clock seconds, 0 = not connected */
	double opened_mono;      /* monotonic seconds of the last open */
};

/* ----------------------------------------------------------------- engine */
int wsb_engine_open(struct wsb_engine *e, char *err, size_t errlen);
void wsb_engine_close(struct wsb_engine *e);
int wsb_engine_service(struct wsb_engine *e);
int wsb_engine_wait(struct wsb_engine *e, double limit);
double wsb_engine_timeout(struct wsb_engine *e);
void wsb_event_free(struct wsb_event *ev);
/* lengine.c: the engine of a Lua state, made on first use */
struct wsb_engine *wsb_engine_get(lua_State *L);
double wsb_now(struct wsb_engine *e);      /* monotonic seconds */
/* t expires at deadline (wsb_now seconds), never before it */
void wsb_timer_start_at(struct wsb_engine *e, uv_timer_t *t, uv_timer_cb cb,
			double deadline);
void wsb_push_event(struct wsb_engine *e, struct wsb_event *ev);
void wsb_defer(struct wsb_client *c, unsigned what);
void wsb_engine_kick(struct wsb_engine *e);
void wsb_engine_uncork(struct wsb_engine *e);
void wsb_wsrx_fail_pending(struct wsb_engine *e);

/*
 * Largest fragment wsbeat writes; also the protocol's tx_packet_size, so
 * lws hands a whole fragment to one send() instead of slicing it into
 * 4 KiB pieces (its default) that each wait for the next POLLOUT.
 */
#define WSB_TX_CHUNK 65536

/*
 * Connection attempts (TCP + TLS + upgrade) in progress at once per engine.
 * libwebsockets keeps every pending connect/handshake timeout in one sorted
 * list and inserts with a walk from its head, so N attempts at once cost
 * O(N^2): 10,000 clients reconnecting together stalled the loop for 10 s.
 * More attempts wait in a FIFO (not counted against connect_timeout).
 */
#define WSB_MAX_ATTEMPTS 256
struct lws_vhost *wsb_vhost_for(struct wsb_engine *e, struct wsb_client *c,
				char *err, size_t errlen);
int wsb_lws_callback(struct lws *wsi, enum lws_callback_reasons reason,
		     void *user, void *in, size_t len);
void wsb_engine_run_deferred(struct wsb_engine *e);
int wsb_engine_poll_more(struct wsb_engine *e, void *L);

void wsb_anchor(lua_State *L, void *key, int idx);
void wsb_unanchor(lua_State *L, void *key);
int wsb_push_anchored(lua_State *L, void *key);
void wsb_read_opts(lua_State *L, int t, struct wsb_opts *o);
void wsb_push_new_conn(lua_State *L, struct wsb_client *c);
struct wsb_client *wsb_test_conn(lua_State *L, int idx);
void wsb_push_request(lua_State *L, const struct wsb_request *r);
void wsb_release_server(lua_State *L, struct wsb_server *s);
int wsb_open_server(lua_State *L); /* lserver.c */
int wsb_slow_consumer(struct wsb_client *c);
int wsb_open_engine(lua_State *L);
int wsb_l_waker_listen(lua_State *L); /* waker.c */
void wsb_waker_stop(struct wsb_engine *e);
int wsb_open_cli(lua_State *L);     /* lcli.c: the CLI's stdin and signals */
int luaopen_wsbeat_core(lua_State *L);

/* ----------------------------------------------------------------- client */
void wsb_client_start(struct wsb_client *c);
void wsb_client_close(struct wsb_client *c, int code, const char *reason,
		      size_t len);
enum wsb_send { WSB_SENT, WSB_SEND_FULL, WSB_SEND_CLOSED, WSB_SEND_NOMEM };
enum wsb_send wsb_client_send(struct wsb_client *c, const char *data,
			      size_t len, int binary);
void wsb_client_send_front(struct wsb_client *c, const char *data,
			   size_t len, int binary);
enum wsb_send wsb_client_send_shared(struct wsb_client *c,
				     struct wsb_shared *sh, int binary);
int wsb_client_ping(struct wsb_client *c, const char *data, size_t len);
void wsb_client_opened(struct wsb_client *c);
void wsb_client_decide(struct wsb_client *c, int retry);
void wsb_client_rx_taken(struct wsb_client *c);
void wsb_client_free(struct wsb_client *c);
void wsb_client_do_deferred(struct wsb_client *c, unsigned what);
void wsb_client_timer_arm(struct wsb_client *c);
void wsb_client_set_proxy(struct wsb_client *c, const struct wsb_proxy *p);
void wsb_client_set_proxy_error(struct wsb_client *c, const char *err);
void wsb_msgq_free(struct wsb_msgq *q);

/* proxy.c: the tunnel through a proxy, started instead of a direct attempt */
void wsb_tunnel_start(struct wsb_client *c);
void wsb_tunnel_abandon(struct wsb_client *c);
int wsb_tunnel_input_waiting(struct wsb_client *c);
double wsb_tunnel_last_rx(struct wsb_client *c);
/* attempt.c, for the tunnel */
void wsb_client_tunnel_ready(struct wsb_client *c, const char *address);

/* retry.c: the retry policy, pure */
const char *wsb_close_code_name(int code);
int wsb_default_retry(const char *cause, int code, int status);
double wsb_backoff(const struct wsb_opts *o, int n, double r,
		   double retry_after);

/* ---------------------------------------------------------------- server */

#define WSB_SERVER_MAGIC 0x77737276u
#define WSB_PENDING_MAGIC 0x7073686bu

/* The upgrade request of a server connection: "name\0value\0" pairs. */
struct wsb_request {
	char *path, *query;
	char remote[64];          /* the peer's address */
	int remote_port;
	char *protocols;          /* offered, as sent, or NULL */
	char *headers;            /* lower-case names */
	size_t headers_len, headers_cap;
};

/* What on_upgrade said. */
struct wsb_verdict {
	int accept;
	int status;               /* refused: the HTTP status */
	char reason[128];
	char protocol[64];        /* accepted: the subprotocol, "" = none */
	int chose;                /* on_upgrade named the subprotocol */
};

typedef void (*wsb_upgrade_fn)(struct wsb_server *s, struct wsb_request *r,
			       struct wsb_verdict *v);

/* A TCP connection accepted but not upgraded yet. */
struct wsb_pending {
	uint32_t magic;           /* WSB_PENDING_MAGIC */
	struct wsb_server *s;     /* NULL: the server is gone */
	struct lws *wsi;
	double deadline;          /* handshake_timeout */
	int listed;
	TAILQ_ENTRY(wsb_pending) link;
	char remote[64];
	int remote_port;
	char *head;               /* the request as far as it has come */
	size_t head_len, head_cap;
	int answered;             /* refused: the answer is written, the
				     socket waits for the client's end */
	struct wsb_engine *e;
	struct wsb_tlsio *tlsio;  /* a wss server's TLS, the connection's
				     once upgraded (tlsio.c) */
};

struct wsb_server {
	uint32_t magic;
	struct wsb_engine *e;
	LIST_ENTRY(wsb_server) link;      /* engine->servers */
	void **udp;
	struct wsb_opts o;        /* what each connection gets */
	int tls, verify_client;
	char *cert_file, *key_file, *ca_file;
	char host[WSB_HOST_MAX];
	int port;
	double handshake_timeout;
	size_t max_connections;
	int on_full_close;
	int has_on_message;
	wsb_upgrade_fn upgrade;   /* NULL: no on_upgrade */
	int fd;                   /* the listening socket, -1 when closed */
	uv_poll_t poll;
	uv_timer_t hs_timer;      /* the oldest pending handshake's deadline */
	int handles;              /* uv handles still to close before free */
	int freed;                /* Lua let go: free with the last handle */
	struct lws_vhost *vh;
	struct wsb_srvhost *sh;
	void *ssl_ctx;            /* wss: the srvhost's SSL_CTX */
	TAILQ_HEAD(, wsb_pending) pending;
	size_t npending;
	LIST_HEAD(, wsb_client) conns;    /* every connection not yet freed */
	size_t live;              /* connections not "closed" */
	int closing;              /* server:close() was called */
	int anchored;             /* its userdata is in the registry */
	/* stats */
	uint64_t accepted, upgraded, refused, full, hs_timeouts, slow,
		 tls_failures;
	uint64_t gone_msgs_sent, gone_msgs_recv, gone_bytes_sent,
		 gone_bytes_recv;
};

int wsb_server_listen(struct wsb_server *s, char *err, size_t errlen);
void wsb_server_close(struct wsb_server *s, int code, const char *reason,
		      size_t len);
void wsb_server_free(struct wsb_server *s);
int wsb_server_callback(struct lws *wsi, enum lws_callback_reasons reason,
			void *user, void *in, size_t len);
void wsb_server_conn_closed(struct wsb_client *c);
void wsb_pending_unlist(struct wsb_pending *p);
int wsb_upgrade_rx(struct lws *wsi, struct wsb_pending *p, void *in,
		   size_t len); /* upgrade.c */
struct wsb_tlsio *wsb_tlsio_accept(void *ssl_ctx); /* tlsio.c */
void wsb_tlsio_destroy(struct wsb_tlsio *t);
int wsb_tlsio_write(struct wsb_engine *e, struct wsb_tlsio *t,
		    struct lws *wsi, const unsigned char *p, size_t n);
void wsb_tlsio_close_notify(struct wsb_engine *e, struct wsb_tlsio *t,
			    struct lws *wsi);
int wsb_tlsio_pending_rx(struct lws *wsi, struct wsb_pending *p,
			 unsigned char *in, size_t len);
struct wsb_hs_req;
struct wsb_request *wsb_request_capture(const struct wsb_hs_req *q,
					 const struct wsb_pending *p);
void wsb_request_free(struct wsb_request *r);
void wsb_request_add(struct wsb_request *r, const char *name,
		     const char *value, size_t vlen);
size_t wsb_server_broadcast(struct wsb_server *s, const char *data,
			    size_t len, int binary, struct wsb_client **only,
			    size_t n_only);
void wsb_srvhosts_free(struct wsb_engine *e);

/* ------------------------------------------------------------------- tls */
int wsb_tls_check(struct wsb_client *c, void *x509_ctx, int preverify_ok);
void *wsb_tls_new_ctx(const struct wsb_opts *o, char *err, size_t errlen);
void wsb_tls_free_ctx(void *ctx);
void *wsb_tls_new_server_ctx(const char *cert_file, const char *key_file,
			     const char *ca_file, int verify_client,
			     char *err, size_t errlen);
const char *wsb_tls_alert(void *ssl); /* fatal alert the peer sent, or NULL */
int wsb_utf8_valid(const unsigned char *s, size_t n); /* strict, as utf8.len */
int wsb_tls_cert_unanswered(void *ssl); /* server asked for a cert we lack */
int wsb_random(unsigned char *buf, int n);

/* ----------------------------------------------------------------- frame */
enum { WSB_OP_CONTINUATION = 0, WSB_OP_TEXT = 1, WSB_OP_BINARY = 2,
       WSB_OP_CLOSE = 8, WSB_OP_PING = 9, WSB_OP_PONG = 10 };
size_t wsb_frame_header(unsigned char *h, unsigned first, uint64_t len,
			int masked);
void wsb_mask(unsigned char *dst, const unsigned char *src, size_t len,
	      const unsigned char key[4]);
/* Bytes a frame of len payload bytes has before its payload (inline: the
 * batch buffer asks for every message); a masked one has the key too. */
static inline size_t wsb_frame_head_len(uint64_t len, int masked)
{
	return (len < 126 ? 2 : len < 65536 ? 4 : 10) + (masked ? 4 : 0);
}
unsigned char *wsb_frame_build(unsigned char *payload, unsigned first,
			       const unsigned char *src, size_t len,
			       const unsigned char *key);
size_t wsb_frame_size(const unsigned char *f);

#endif
