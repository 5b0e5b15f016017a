/* Chunked transfer coding decoder (RFC 9112 §7.1).
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext    = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 *
 * Data is handed out as slices of the input, never copied. Extensions and trailer fields
 * are validated and dropped: nothing in them reaches the origin or the client, so their
 * only job here is to be unambiguous. Every framing byte goes through the state machine
 * one at a time, so any split of the input gives the same result. */
#include "portico/h1.h"
#include "h1_chars.h"

enum {
    C_SIZE_START = 0,   /* first hex digit of a chunk-size */
    C_SIZE,
    C_BWS_SEMI,         /* whitespace after the size or a value: only ';' may follow */
    C_EXT_NAME_START,   /* after ';': BWS then ext-name */
    C_EXT_NAME,
    C_EXT_NAME_BWS,     /* whitespace after ext-name: '=' or ';' may follow */
    C_EXT_VAL_START,    /* after '=': BWS then token or quoted-string */
    C_EXT_VAL,
    C_EXT_QSTR,
    C_EXT_QPAIR,
    C_EXT_AFTER_QSTR,
    C_SIZE_LF,
    C_DATA,
    C_DATA_CR,
    C_DATA_LF,
    C_TR_START,         /* start of a trailer field line or the final CRLF */
    C_TR_NAME,
    C_TR_VALUE,
    C_TR_LF,
    C_END_LF,
    C_DONE,
    C_ERROR
};

void pt_h1_chunked_init(pt_h1_chunked *c)
{
    memset(c, 0, sizeof(*c));
}

static unsigned hexval(unsigned ch)
{
    return ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
}

#define fail(msg)                 \
    do {                          \
        c->error = (msg);         \
        c->state = C_ERROR;       \
        *pos = (const char *) p;  \
        return PT_ERROR;          \
    } while (0)

int pt_h1_chunked_decode(pt_h1_chunked *c, const char **pos, const char *last,
                         const char **data, size_t *len)
{
    const unsigned char *p = (const unsigned char *) *pos;
    const unsigned char *e = (const unsigned char *) last;
    unsigned             ch;
    size_t               n;

    for ( ;; ) {
        switch (c->state) {
        case C_DONE:
            *pos = (const char *) p;
            return PT_DONE;
        case C_ERROR:
            *pos = (const char *) p;
            return PT_ERROR;
        case C_DATA:
            if (p == e)
                goto more;
            n = (size_t) pt_min(c->remaining, (uint64_t) (e - p));
            *data = (const char *) p;
            *len = n;
            p += n;
            c->remaining -= n;
            c->total += n;
            if (c->remaining == 0)
                c->state = C_DATA_CR;
            *pos = (const char *) p;
            return PT_OK;
        }

        if (p == e)
            goto more;
        ch = *p++;

        /* Extension bytes run from the first ';' or BWS up to, not including, the CR. */
        if (c->state >= C_BWS_SEMI && c->state <= C_EXT_AFTER_QSTR && ch != '\r'
            && ++c->ext_len > PT_H1_MAX_CHUNK_EXT)
        {
            fail("chunk extensions too long");
        }
        if (c->state >= C_TR_START && c->state <= C_END_LF) {
            if (++c->trailer_len > PT_H1_MAX_TRAILER)
                fail("trailer section too large");
            /* field lines kept whole (checked below as they go; the final CRLF not) */
            if (c->keep && c->state <= C_TR_LF && !(c->state == C_TR_START && ch == '\r'))
                c->keep[c->keep_len++] = (char) ch;
        }

        switch (c->state) {

        case C_SIZE_START:
            if (!pt_h1_is(ch, PT_H1_C_HEX))
                fail("invalid chunk size");
            c->size = hexval(ch);
            c->digits = 1;
            c->ext_len = 0;
            c->state = C_SIZE;
            break;

        case C_SIZE:
            if (pt_h1_is(ch, PT_H1_C_HEX)) {
                /* 16 digits fill 64 bits: more can only be padding or an overflow. */
                if (++c->digits > 16)
                    fail("chunk size too long");
                c->size = c->size << 4 | hexval(ch);
                break;
            }
            if (ch == '\r') {
                c->state = C_SIZE_LF;
            } else if (ch == ';') {
                c->ext_len = 1;
                c->state = C_EXT_NAME_START;
            } else if (ch == ' ' || ch == '\t') {
                c->ext_len = 1;
                c->state = C_BWS_SEMI;
            } else {
                fail(ch == '\n' ? "bare LF after chunk size" : "invalid chunk size");
            }
            break;

        case C_BWS_SEMI:
            if (ch == ';')
                c->state = C_EXT_NAME_START;
            else if (ch != ' ' && ch != '\t')
                fail("whitespace not followed by ';' in chunk line");
            break;

        case C_EXT_NAME_START:
            if (pt_h1_is(ch, PT_H1_C_TCHAR))
                c->state = C_EXT_NAME;
            else if (ch != ' ' && ch != '\t')
                fail("invalid chunk extension name");
            break;

        case C_EXT_NAME:
            if (pt_h1_is(ch, PT_H1_C_TCHAR))
                break;
            if (ch == '=')
                c->state = C_EXT_VAL_START;
            else if (ch == ';')
                c->state = C_EXT_NAME_START;
            else if (ch == ' ' || ch == '\t')
                c->state = C_EXT_NAME_BWS;
            else if (ch == '\r')
                c->state = C_SIZE_LF;
            else
                fail("invalid character in chunk extension");
            break;

        case C_EXT_NAME_BWS:
            if (ch == '=')
                c->state = C_EXT_VAL_START;
            else if (ch == ';')
                c->state = C_EXT_NAME_START;
            else if (ch != ' ' && ch != '\t')
                fail("invalid character in chunk extension");
            break;

        case C_EXT_VAL_START:
            if (pt_h1_is(ch, PT_H1_C_TCHAR))
                c->state = C_EXT_VAL;
            else if (ch == '"')
                c->state = C_EXT_QSTR;
            else if (ch != ' ' && ch != '\t')
                fail("invalid chunk extension value");
            break;

        case C_EXT_VAL:
            /* What may follow a token value is what may follow a quoted one. */
            if (pt_h1_is(ch, PT_H1_C_TCHAR))
                break;
            /* fall through */
        case C_EXT_AFTER_QSTR:
            if (ch == ';')
                c->state = C_EXT_NAME_START;
            else if (ch == ' ' || ch == '\t')
                c->state = C_BWS_SEMI;
            else if (ch == '\r')
                c->state = C_SIZE_LF;
            else
                fail("invalid character in chunk extension");
            break;

        case C_EXT_QSTR:
            if (ch == '"')
                c->state = C_EXT_AFTER_QSTR;
            else if (ch == '\\')
                c->state = C_EXT_QPAIR;
            else if (!pt_h1_is(ch, PT_H1_C_QDTEXT))
                fail("invalid character in chunk extension quoted string");
            break;

        case C_EXT_QPAIR:
            if (!pt_h1_is(ch, PT_H1_C_FVALUE))
                fail("invalid quoted-pair in chunk extension");
            c->state = C_EXT_QSTR;
            break;

        case C_SIZE_LF:
            if (ch != '\n')
                fail("bare CR in chunk line");
            if (c->size == 0) {
                c->trailer_len = 0;
                c->state = C_TR_START;
            } else {
                c->remaining = c->size;
                c->state = C_DATA;
            }
            break;

        case C_DATA_CR:
            if (ch != '\r')
                fail("chunk data not followed by CRLF");
            c->state = C_DATA_LF;
            break;

        case C_DATA_LF:
            if (ch != '\n')
                fail("bare CR after chunk data");
            c->state = C_SIZE_START;
            break;

        case C_TR_START:
            if (ch == '\r')
                c->state = C_END_LF;
            else if (pt_h1_is(ch, PT_H1_C_TCHAR))
                c->state = C_TR_NAME;
            else if (ch == ' ' || ch == '\t')
                fail("obsolete line folding in trailer section");
            else if (ch == '\n')
                fail("bare LF in trailer section");
            else
                fail("invalid trailer field name");
            break;

        case C_TR_NAME:
            if (pt_h1_is(ch, PT_H1_C_TCHAR))
                break;
            if (ch != ':')
                fail(ch == ' ' || ch == '\t' ? "whitespace before colon in trailer field"
                                             : "invalid trailer field name");
            c->state = C_TR_VALUE;
            break;

        case C_TR_VALUE:
            if (pt_h1_is(ch, PT_H1_C_FVALUE))
                break;
            if (ch != '\r')
                fail(ch == '\n' ? "bare LF in trailer field"
                                : "invalid character in trailer field");
            c->state = C_TR_LF;
            break;

        case C_TR_LF:
            if (ch != '\n')
                fail("bare CR in trailer field");
            c->state = C_TR_START;
            break;

        case C_END_LF:
            if (ch != '\n')
                fail("bare CR at the end of the chunked body");
            c->state = C_DONE;
            break;

        default:
            fail("chunked decoder in an impossible state");
        }
    }

more:
    *pos = (const char *) p;
    return PT_AGAIN;
}
