/*
 * A proxy tunnel's insides, shared by the two files that make it up:
 * src/proxy.c (resolving, connecting, the CONNECT or SOCKS5 exchange) and
 * src/relay.c (the tunnel's life, and the relay between lws's socket and
 * the proxy's once it stands).
 */
#ifndef WSBEAT_TUNNEL_H
#define WSBEAT_TUNNEL_H

#include <sys/socket.h>

#include "wsbeat.h"

#define ANSWER_MAX 16384  /* a proxy's answer to CONNECT, headers included */
#define RELAY_CHUNK 65536 /* one read of the relay */

enum tn_state {
	TN_RESOLVE_PROXY, /* the proxy's name */
	TN_RESOLVE_TARGET,/* the server's name (socks5://) */
	TN_CONNECT,       /* TCP to the proxy */
	TN_HANDSHAKE,     /* CONNECT or SOCKS5 exchange */
	TN_RELAY          /* the tunnel stands: lws connects, bytes flow */
};

enum socks_step { S_METHOD, S_AUTH, S_CONNECT };

struct wsb_tunnel {
	struct wsb_client *c;   /* NULL once abandoned */
	struct wsb_engine *e;
	enum tn_state state;
	int handles;            /* initialised handles not yet closed */
	int resolving;          /* a uv_getaddrinfo is in flight */
	uv_getaddrinfo_t gai;
	uv_connect_t creq;
	uv_tcp_t up;            /* to the proxy */
	uv_pipe_t lsn;          /* where lws connects */
	uv_pipe_t down;         /* lws's end, once accepted */
	int up_open, lsn_open, down_open;
	char name[64];          /* abstract socket name, after the '@' */
	struct sockaddr_storage proxy_addr;
	/* socks5:// resolves the server itself */
	int target_family;
	unsigned char target_ip[16];
	/* the proxy's answer */
	unsigned char *ans;
	size_t ans_len;
	enum socks_step socks;
	/* bytes that followed the answer, for lws */
	unsigned char *early;
	size_t early_len;
	/* relay: one write in flight per direction at most */
	unsigned char *buf_up, *buf_down; /* read buffers: from up, from down */
	int to_down_busy, to_up_busy;
	int up_done, down_done; /* EOF or error seen on that side */
	double last_rx;         /* when bytes last came from the proxy */
};

/* relay.c */
void wsb_tn_free_if_done(struct wsb_tunnel *t);
void wsb_tn_close_all(struct wsb_tunnel *t);
void wsb_tn_fail(struct wsb_tunnel *t, const char *cause, int status,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int wsb_tn_write(struct wsb_tunnel *t, int to_up, const void *data,
		 size_t len);
void wsb_tn_ready(struct wsb_tunnel *t);

#endif
