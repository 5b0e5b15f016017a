/* A fixed-size byte buffer: [start, pos) consumed, [pos, last) data, [last, end) free. */
#ifndef PT_BUF_T_H
#define PT_BUF_T_H

typedef struct pt_buf {
    char *start;
    char *pos;
    char *last;
    char *end;
} pt_buf;

#define pt_buf_len(b)   ((size_t) ((b)->last - (b)->pos))
#define pt_buf_free(b)  ((size_t) ((b)->end - (b)->last))
#define pt_buf_size(b)  ((size_t) ((b)->end - (b)->start))
#define pt_buf_reset(b) ((b)->pos = (b)->last = (b)->start)

#endif
