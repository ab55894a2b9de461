/*
 * The parsing helpers handshake.c (the server's side) and hsclient.c (the
 * client's) share: private to the two, not part of handshake.h.
 */
#ifndef WSB_HSPARSE_H
#define WSB_HSPARSE_H

#include "handshake.h"

int wsb_hsp_any_has_token(const struct wsb_hs_req *q, const char *name,
			  const char *token);
char *wsb_hsp_cut_line(char *s);
int wsb_hsp_fail(const char **why, int status, const char *msg);
int wsb_hsp_is_digit(int ch);
int wsb_hsp_is_ows(int ch);
int wsb_hsp_is_tchar(int ch);
int wsb_hsp_list_has(const char *list, const char *token, int ci);
int wsb_hsp_load_head(struct wsb_hs_req *q, const char *head, size_t len,
		      size_t extra, size_t *nlines, const char **why);
int wsb_hsp_name_is(const char *stored, const char *name);
int wsb_hsp_parse_headers(struct wsb_hs_req *q, char *next, size_t nh,
			  const char **why);
const char *wsb_hsp_single(const struct wsb_hs_req *q, const char *name,
			   int *many);

#endif
