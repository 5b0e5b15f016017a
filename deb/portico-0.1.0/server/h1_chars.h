/* Character classes shared by the HTTP/1.x parser files (h1_parse.c, h1_chunked.c,
 * h1_analyze.c). Private to server/: one 256-byte table, one load per byte. */
#ifndef PT_H1_CHARS_H
#define PT_H1_CHARS_H

#include <stdint.h>

#define PT_H1_C_TCHAR    0x01  /* token (RFC 9110 §5.6.2) */
#define PT_H1_C_TARGET   0x02  /* request-target byte we accept: 0x21-0x7e except '#' */
#define PT_H1_C_FVALUE   0x04  /* field-value / reason-phrase: HTAB SP VCHAR obs-text */
#define PT_H1_C_WS       0x08  /* SP HTAB */
#define PT_H1_C_QDTEXT   0x10  /* quoted-string text (RFC 9110 §5.6.4) */
#define PT_H1_C_HEX      0x20  /* HEXDIG */
#define PT_H1_C_HOST     0x40  /* host name byte: ALPHA DIGIT '-' '.' '_' (no '%', no sub-delims) */
#define PT_H1_C_DIGIT    0x80

extern const uint8_t pt_h1_chars[256];

#define pt_h1_is(c, cls) (pt_h1_chars[(unsigned char) (c)] & (cls))

#endif
