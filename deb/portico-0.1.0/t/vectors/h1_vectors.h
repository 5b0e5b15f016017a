/* HTTP/1.x vectors: raw bytes and the expected outcome. Shared by t/unit/test_h1.c (which
 * runs them whole, byte by byte and split in two at every offset) and t/fuzz/ (whose seed
 * corpus is written from them). Numbers in brackets are the cases of the design note
 * http-strictness.md. Include once, after portico/h1.h. */
#ifndef PT_H1_VECTORS_H
#define PT_H1_VECTORS_H

static const pt_h1_limits h1v_lim = { 8192, 4096, 50 };

/* ---- request vectors ---------------------------------------------------------------- */

enum { AT_OK = 0, AT_PARSE, AT_ANALYZE, AT_MORE };

typedef struct {
    const char *name;
    const char *raw;
    size_t      len;
    int         at;          /* AT_OK, or where it fails, or AT_MORE (incomplete) */
    unsigned    status;      /* on failure */
    /* checked when accepted; NULL strings are "absent" (query/authority) or not checked */
    const char *method, *target, *path, *query, *authority, *host;
    unsigned    version;
    const char *cl;          /* NULL: no Content-Length (-1) */
    const char *flags;       /* exactly these are true: c chunked, k keepalive,
                              * e expect_continue, u upgrade, a absolute_form, * asterisk */
    int         nheaders;    /* NH(count); 0: not checked */
    size_t      head_len;    /* 0: the whole input */
    const char *hname, *hval;   /* this field must be present with exactly this value */
    size_t      max_head, max_target, max_headers;   /* 0: default limits */
    pt_method   method_id;
} rvec;

/* Designated initializers only: raw strings may hold NULs, hence the explicit length. */
#define R(s) .raw = s, .len = sizeof(s) - 1
#define OK(nm, raw, ...)  { .name = nm, R(raw), .at = AT_OK, __VA_ARGS__ }
#define PBAD(nm, raw, st, ...) { .name = nm, R(raw), .at = AT_PARSE, .status = st, __VA_ARGS__ }
#define ABAD(nm, raw, st, ...) \
    { .name = nm, R(raw), .at = AT_ANALYZE, .status = st, __VA_ARGS__ }
#define NH(n) ((n) + 1)
#define MORE(nm, raw)     { .name = nm, R(raw), .at = AT_MORE }

#define H11 " HTTP/1.1\r\nHost: a\r\n"

static const rvec reqs[] = {
    /* valid requests */
    OK("simple GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "GET", .method_id = PT_M_GET, .target = "/", .path = "/", .version = 11,
       .authority = "a", .host = "a", .flags = "k", .nheaders = NH(1)),
    OK("POST with Content-Length, body left alone",
       "POST /submit?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nContent-Length: 5\r\n\r\nhello",
       .method = "POST", .method_id = PT_M_POST, .path = "/submit", .query = "x=1",
       .authority = "example.com:8080", .host = "example.com", .cl = "5", .flags = "k",
       .head_len = sizeof("POST /submit?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n"
                          "Content-Length: 5\r\n\r\n") - 1, .nheaders = NH(2)),
    OK("chunked POST", "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
       "5\r\nhello\r\n0\r\n\r\n", .flags = "ck",
       .head_len = sizeof("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
                   - 1),
    OK("TE chunked case-insensitive", "POST /" H11 "Transfer-Encoding: ChUnKeD\r\n\r\n",
       .flags = "ck"),
    OK("TE chunked with OWS", "POST /" H11 "Transfer-Encoding: \t chunked \t\r\n\r\n",
       .flags = "ck", .hname = "transfer-encoding", .hval = "chunked"),
    OK("pipelined: second request untouched",
       "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n", .path = "/1",
       .head_len = sizeof("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n") - 1, .flags = "k"),
    OK("pipelined garbage after head untouched", "GET / HTTP/1.1\r\nHost: a\r\n\r\n\x01\n\r",
       .head_len = sizeof("GET / HTTP/1.1\r\nHost: a\r\n\r\n") - 1, .flags = "k"),
    OK("[18] absolute-form overrides Host", "GET http://a/x?y HTTP/1.1\r\nHost: b\r\n\r\n",
       .target = "http://a/x?y", .path = "/x", .query = "y", .authority = "a", .host = "a",
       .flags = "ka"),
    OK("absolute-form, port, empty path", "GET http://a:8080 HTTP/1.1\r\nHost: b\r\n\r\n",
       .path = "/", .authority = "a:8080", .host = "a", .flags = "ka"),
    OK("absolute-form https, query only", "GET HTTPS://Example.COM?q=1 HTTP/1.1\r\nHost: b\r\n\r\n",
       .path = "/", .query = "q=1", .authority = "Example.COM", .host = "Example.COM",
       .flags = "ka"),
    OK("absolute-form IPv6", "GET http://[::1]:81/p HTTP/1.1\r\nHost: b\r\n\r\n",
       .path = "/p", .authority = "[::1]:81", .host = "[::1]", .flags = "ka"),
    OK("absolute-form in HTTP/1.0 without Host", "GET http://a/ HTTP/1.0\r\n\r\n",
       .path = "/", .authority = "a", .host = "a", .flags = "a", .version = 10),
    OK("[19] OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", .method_id = PT_M_OPTIONS,
       .path = "*", .flags = "k*"),
    OK("[23] HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
       .version = 10, .flags = "k", .nheaders = NH(1)),
    OK("[23] HTTP/1.0 Keep-Alive mixed case in list",
       "GET / HTTP/1.0\r\nConnection: foo , Keep-Alive\r\n\r\n", .version = 10, .flags = "k"),
    OK("[23] HTTP/1.0 default close", "GET / HTTP/1.0\r\n\r\n", .version = 10, .flags = "",
       .nheaders = NH(0)),
    OK("HTTP/1.0 keep-alive and close", "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
       .version = 10, .flags = ""),
    OK("HTTP/1.1 close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", .flags = ""),
    OK("close in second Connection field",
       "GET /" H11 "Connection: foo\r\nConnection: bar,CLOSE\r\n\r\n", .flags = ""),
    OK("upgrade", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
       .flags = "ku"),
    OK("Connection upgrade without Upgrade field",
       "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", .flags = "k"),
    OK("Upgrade field without Connection: upgrade",
       "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", .flags = "k"),
    OK("one leading CRLF", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", .path = "/", .flags = "k"),
    OK("8 leading CRLFs", "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
       .path = "/", .flags = "k"),
    OK("[15] obs-text kept verbatim", "GET / HTTP/1.1\r\nHost: a\r\nX: \x80" "caf\xe9\xff\r\n\r\n",
       .hname = "x", .hval = "\x80" "caf\xe9\xff", .flags = "k"),
    OK("[15] leading/trailing \\xa0 \\x85 not trimmed",
       "GET / HTTP/1.1\r\nHost: a\r\nX:  \xa0" "a\x85 \r\n\r\n", .hname = "X",
       .hval = "\xa0" "a\x85", .flags = "k"),
    OK("OWS trimmed, inner kept", "GET / HTTP/1.1\r\nHost: a\r\nX: \t a \t b \t \r\n\r\n",
       .hname = "x", .hval = "a \t b", .flags = "k"),
    OK("empty value", "GET / HTTP/1.1\r\nHost: a\r\nX:\r\n\r\n", .hname = "x", .hval = "",
       .flags = "k", .nheaders = NH(2)),
    OK("whitespace-only value", "GET / HTTP/1.1\r\nHost: a\r\nX: \t \r\n\r\n", .hname = "x",
       .hval = "", .flags = "k"),
    OK("name with every tchar", "GET / HTTP/1.1\r\nHost: a\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n",
       .hname = "!#$%&'*+-.^_`|~09AZaz", .hval = "v", .flags = "k"),
    OK("value with every VCHAR", "GET / HTTP/1.1\r\nHost: a\r\nX: !\"#$%&'()*+,-./09:;<=>?@AZ"
       "[\\]^_`az{|}~\r\n\r\n", .hname = "x",
       .hval = "!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~", .flags = "k"),
    OK("empty query", "GET /p? HTTP/1.1\r\nHost: a\r\n\r\n", .path = "/p", .query = "",
       .flags = "k"),
    OK("query with ? inside", "GET /p?a=b?c&d HTTP/1.1\r\nHost: a\r\n\r\n", .path = "/p",
       .query = "a=b?c&d", .flags = "k"),
    OK("odd but allowed target bytes", "GET /a|b{c}\"<>^`\\ HTTP/1.1\r\nHost: a\r\n\r\n",
       .path = "/a|b{c}\"<>^`\\", .flags = "k"),
    OK("[22] Expect: 100-continue", "PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
       "Expect: 100-Continue\r\n\r\n", .method_id = PT_M_PUT, .cl = "3", .flags = "ke"),
    OK("[22] Expect ignored on HTTP/1.0", "GET / HTTP/1.0\r\nExpect: foo\r\n\r\n", .version = 10,
       .flags = ""),
    OK("Host with port", "GET / HTTP/1.1\r\nHost: Example.org:65535\r\n\r\n",
       .authority = "Example.org:65535", .host = "Example.org", .flags = "k"),
    OK("Host IPv4", "GET / HTTP/1.1\r\nHost: 10.0.0.1:80\r\n\r\n", .host = "10.0.0.1",
       .flags = "k"),
    OK("Host IPv6", "GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n", .host = "[2001:db8::1]",
       .authority = "[2001:db8::1]", .flags = "k"),
    OK("Host IPv6 full with IPv4 tail", "GET / HTTP/1.1\r\nHost: [1:2:3:4:5:6:1.2.3.4]:8\r\n\r\n",
       .host = "[1:2:3:4:5:6:1.2.3.4]", .flags = "k"),
    OK("Host IPv6 ::ffff:v4", "GET / HTTP/1.1\r\nHost: [::ffff:192.168.0.1]\r\n\r\n",
       .host = "[::ffff:192.168.0.1]", .flags = "k"),
    OK("Host IPv6 unspecified", "GET / HTTP/1.1\r\nHost: [::]:80\r\n\r\n", .host = "[::]",
       .flags = "k"),
    OK("Host IPv6 trailing ::", "GET / HTTP/1.1\r\nHost: [1:2::]\r\n\r\n", .host = "[1:2::]",
       .flags = "k"),
    OK("Host 8 groups", "GET / HTTP/1.1\r\nHost: [1:2:3:4:5:6:7:8]\r\n\r\n",
       .host = "[1:2:3:4:5:6:7:8]", .flags = "k"),
    OK("Host name bytes", "GET / HTTP/1.1\r\nHost: aZ09_.-b:1\r\n\r\n", .host = "aZ09_.-b",
       .flags = "k"),
    OK("Host trailing dot", "GET / HTTP/1.1\r\nHost: a.example.:8\r\n\r\n",
       .host = "a.example.", .flags = "k"),
    OK("unknown method passed through", "PROPFIND /d HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "PROPFIND", .method_id = PT_M_OTHER, .flags = "k"),
    OK("lower-case method is another method", "get / HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "get", .method_id = PT_M_OTHER, .flags = "k"),
    OK("HEAD", "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", .method_id = PT_M_HEAD, .flags = "k"),
    OK("DELETE", "DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n", .method_id = PT_M_DELETE, .flags = "k"),
    OK("PATCH", "PATCH /x HTTP/1.1\r\nHost: a\r\n\r\n", .method_id = PT_M_PATCH, .flags = "k"),
    OK("TRACE", "TRACE /x HTTP/1.1\r\nHost: a\r\n\r\n", .method_id = PT_M_TRACE, .flags = "k"),
    OK("[27] GET with a body", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789",
       .cl = "10", .flags = "k", .head_len = 47),
    OK("Content-Length 0", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", .cl = "0",
       .flags = "k"),
    OK("Content-Length leading zeros", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n",
       .cl = "7", .flags = "k"),
    OK("Content-Length INT64_MAX", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
       "9223372036854775807\r\n\r\n", .cl = "9223372036854775807", .flags = "k"),
    OK("Content-Length OWS", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\t 12 \t\r\n\r\n",
       .cl = "12", .flags = "k"),
    OK("[14] Content_Length is just a name",
       "POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\n", .cl = NULL, .flags = "k",
       .hname = "content_length", .hval = "5"),
    OK("name case preserved", "GET / HTTP/1.1\r\nhOsT: a\r\nX-Foo: 1\r\n\r\n", .flags = "k",
       .hname = "X-Foo", .hval = "1"),
    OK("value with colon", "GET / HTTP/1.1\r\nHost: a\r\nX: a:b: c\r\n\r\n", .hname = "x",
       .hval = "a:b: c", .flags = "k"),
    OK("[28] target exactly max_target", "GET /123456789abcdef HTTP/1.1\r\nHost: a\r\n\r\n",
       .max_target = 16, .flags = "k"),
    OK("[28] exactly max_headers", "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\n\r\n",
       .max_headers = 3, .nheaders = NH(3), .flags = "k"),
    OK("[28] head exactly max_head", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", .max_head = 27,
       .flags = "k"),
    OK("leading CRLFs do not count against max_head",
       "\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", .max_head = 27, .flags = "k"),

    /* incomplete */
    MORE("incomplete request line", "GET / HTTP/1.1"),
    MORE("incomplete: no final CRLF", "GET / HTTP/1.1\r\nHost: a\r\n"),
    MORE("incomplete: final CR only", "GET / HTTP/1.1\r\nHost: a\r\n\r"),
    MORE("incomplete: only leading CRLFs", "\r\n\r\n"),
    MORE("incomplete: empty", ""),

    /* [1] CL and TE together */
    ABAD("[1] CL then TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
         "Transfer-Encoding: chunked\r\n\r\n", 400),
    ABAD("[1] TE then CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
         "Content-Length: 4\r\n\r\n", 400),
    /* [2] several CL */
    ABAD("[2] two CL differing", "POST /" H11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
         400),
    ABAD("[2] two CL equal", "POST /" H11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
    ABAD("[2] CL list differing", "POST /" H11 "Content-Length: 5, 6\r\n\r\n", 400),
    ABAD("[2] CL list equal", "POST /" H11 "Content-Length: 5, 5\r\n\r\n", 400),
    ABAD("[2] CL and content-length", "POST /" H11 "Content-Length: 5\r\ncontent-length: 5\r\n\r\n",
         400),
    /* [3] invalid CL */
    ABAD("[3] CL empty", "POST /" H11 "Content-Length:\r\n\r\n", 400),
    ABAD("[3] CL blank", "POST /" H11 "Content-Length:  \r\n\r\n", 400),
    ABAD("[3] CL +5", "POST /" H11 "Content-Length: +5\r\n\r\n", 400),
    ABAD("[3] CL -1", "POST /" H11 "Content-Length: -1\r\n\r\n", 400),
    ABAD("[3] CL 0x5", "POST /" H11 "Content-Length: 0x5\r\n\r\n", 400),
    ABAD("[3] CL 5.0", "POST /" H11 "Content-Length: 5.0\r\n\r\n", 400),
    ABAD("[3] CL 1_0", "POST /" H11 "Content-Length: 1_0\r\n\r\n", 400),
    ABAD("[3] CL 20 digits", "POST /" H11 "Content-Length: 12345678901234567890\r\n\r\n", 400),
    ABAD("[3] CL 20 digits zero-padded",
         "POST /" H11 "Content-Length: 00000000000000000005\r\n\r\n",
         400),
    ABAD("[3] CL INT64_MAX + 1", "POST /" H11 "Content-Length: 9223372036854775808\r\n\r\n", 400),
    ABAD("[3] CL 5 6", "POST /" H11 "Content-Length: 5 6\r\n\r\n", 400),
    ABAD("[3] CL 5a", "POST /" H11 "Content-Length: 5a\r\n\r\n", 400),
    ABAD("[3] CL obs-text", "POST /" H11 "Content-Length: 5\xa0\r\n\r\n", 400),
    /* [4] TE other than exactly chunked */
    ABAD("[4] TE chunked, chunked", "POST /" H11 "Transfer-Encoding: chunked, chunked\r\n\r\n",
         400),
    ABAD("[4] TE gzip", "POST /" H11 "Transfer-Encoding: gzip\r\n\r\n", 400),
    ABAD("[4] TE gzip, chunked", "POST /" H11 "Transfer-Encoding: gzip, chunked\r\n\r\n", 400),
    ABAD("[4] TE identity", "POST /" H11 "Transfer-Encoding: identity\r\n\r\n", 400),
    ABAD("[4] TE ,chunked", "POST /" H11 "Transfer-Encoding: ,chunked\r\n\r\n", 400),
    ABAD("[4] TE chunked,", "POST /" H11 "Transfer-Encoding: chunked,\r\n\r\n", 400),
    ABAD("[4] TE chunked;x=y", "POST /" H11 "Transfer-Encoding: chunked;x=y\r\n\r\n", 400),
    ABAD("[4] TE xchunked", "POST /" H11 "Transfer-Encoding: xchunked\r\n\r\n", 400),
    ABAD("[4] TE empty", "POST /" H11 "Transfer-Encoding:\r\n\r\n", 400),
    ABAD("[4] TE \"chunked\"", "POST /" H11 "Transfer-Encoding: \"chunked\"\r\n\r\n", 400),
    ABAD("[4] two TE fields", "POST /" H11 "Transfer-Encoding: chunked\r\n"
         "Transfer-Encoding: chunked\r\n\r\n", 400),
    ABAD("[4] TE gzip then chunked fields", "POST /" H11 "Transfer-Encoding: gzip\r\n"
         "Transfer-Encoding: chunked\r\n\r\n", 400),
    /* [5] whitespace and CTLs around TE */
    PBAD("[5] space before colon", "POST /" H11 "Transfer-Encoding : chunked\r\n\r\n", 400),
    PBAD("[5] tab before colon", "POST /" H11 "Transfer-Encoding\t: chunked\r\n\r\n", 400),
    PBAD("[5] tab before first field", "POST / HTTP/1.1\r\n\tTransfer-Encoding: chunked\r\n"
         "Host: a\r\n\r\n", 400),
    PBAD("[5] space before later field", "POST /" H11 " Transfer-Encoding: chunked\r\n\r\n", 400),
    PBAD("[5] TE value with \\x0b", "POST /" H11 "Transfer-Encoding: \x0b" "chunked\r\n\r\n", 400),
    PBAD("[5] TE value with \\x0c", "POST /" H11 "Transfer-Encoding: chunked\x0c\r\n\r\n", 400),
    ABAD("[5] TE value with \\xa0", "POST /" H11 "Transfer-Encoding: \xa0" "chunked\r\n\r\n", 400),
    /* [6] */
    ABAD("[6] TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    /* [7] */
    PBAD("[7] obs-fold", "GET /" H11 "X: a\r\n b\r\n\r\n", 400),
    PBAD("[7] obs-fold with tab", "GET /" H11 "X: a\r\n\tb\r\n\r\n", 400),
    /* [8] bare CR */
    PBAD("[8] bare CR in header line", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
    PBAD("[8] CR CR LF", "GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", 400),
    PBAD("[8] CR inside value", "GET /" H11 "X: a\rb\r\n\r\n", 400),
    PBAD("[8] bare CR ending request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
    PBAD("[8] bare CR in target", "GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("[8] bare CR final line", "GET /" H11 "\r\r\n", 400),
    PBAD("[8] bare CR final line then data", "GET /" H11 "\rX", 400),
    PBAD("[8] bare CR leading line", "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("[8] CR in method", "GE\rT / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("[8] header line without colon", "GET /" H11 "X\r\n\r\n", 400),
    /* [9] bare LF */
    PBAD("[9] all bare LF", "GET / HTTP/1.1\nHost: a\n\n", 400),
    PBAD("[9] bare LF after header", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400),
    PBAD("[9] bare LF final line", "GET /" H11 "\n", 400),
    PBAD("[9] bare LF leading line", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("[9] bare LF in value", "GET /" H11 "X: a\nb\r\n\r\n", 400),
    PBAD("[9] bare LF in name", "GET /" H11 "X\n: a\r\n\r\n", 400),
    /* [14] field names */
    PBAD("[14] space in name", "GET /" H11 "Fo o: x\r\n\r\n", 400),
    PBAD("[14] CTL in name", "GET /" H11 "F\x01o: x\r\n\r\n", 400),
    PBAD("[14] empty name", "GET /" H11 ": x\r\n\r\n", 400),
    PBAD("[14] obs-text in name", "GET /" H11 "F\xe9: x\r\n\r\n", 400),
    PBAD("[14] '(' in name", "GET /" H11 "F(o: x\r\n\r\n", 400),
    PBAD("[14] NUL in name", "GET /" H11 "F\0o: x\r\n\r\n", 400),
    /* [15] CTLs in values */
    PBAD("[15] NUL in value", "GET /" H11 "X: a\0b\r\n\r\n", 400),
    PBAD("[15] NUL at end of value", "GET /" H11 "X: a\0\r\n\r\n", 400),
    PBAD("[15] \\x01 in value", "GET /" H11 "X: \x01\r\n\r\n", 400),
    PBAD("[15] \\x1f in value", "GET /" H11 "X: a\x1f\r\n\r\n", 400),
    PBAD("[15] DEL in value", "GET /" H11 "X: a\x7f\r\n\r\n", 400),
    PBAD("[15] \\x0b in value", "GET /" H11 "X: a\x0b" "b\r\n\r\n", 400),
    PBAD("[15] ESC in value", "GET /" H11 "X: \x1b[0m\r\n\r\n", 400),
    /* [16] */
    PBAD("[16] whitespace line after request line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    PBAD("[16] SP-only line", "GET / HTTP/1.1\r\n \r\nHost: a\r\n\r\n", 400),
    /* [17] Host */
    ABAD("[17] missing Host", "GET / HTTP/1.1\r\n\r\n", 400),
    ABAD("[17] two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
    ABAD("[17] two Host, differing case", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400),
    ABAD("[17] two Host in HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ABAD("[17] Host a b", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ABAD("[17] Host a\\foo", "GET / HTTP/1.1\r\nHost: a\\foo\r\n\r\n", 400),
    ABAD("[17] Host a,b", "GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", 400),
    ABAD("[17] Host a@b", "GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400),
    ABAD("[17] Host a/b", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    ABAD("[17] Host empty", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),
    ABAD("[17] Host empty in HTTP/1.0", "GET / HTTP/1.0\r\nHost: \r\n\r\n", 400),
    ABAD("[17] Host empty port", "GET / HTTP/1.1\r\nHost: a:\r\n\r\n", 400),
    ABAD("[17] Host port 65536", "GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n", 400),
    ABAD("[17] Host port 6 digits", "GET / HTTP/1.1\r\nHost: a:000080\r\n\r\n", 400),
    ABAD("[17] Host port not digits", "GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", 400),
    ABAD("[17] Host only port", "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 400),
    ABAD("[17] Host bad pct", "GET / HTTP/1.1\r\nHost: a%4g\r\n\r\n", 400),
    ABAD("[17] Host truncated pct", "GET / HTTP/1.1\r\nHost: a%4\r\n\r\n", 400),
    /* a name an origin may decode into another: no route could have matched it */
    ABAD("[17] Host pct-encoded dot", "GET / HTTP/1.1\r\nHost: internal%2eexample\r\n\r\n",
         400),
    ABAD("[17] Host pct-encoded NUL", "GET / HTTP/1.1\r\nHost: internal.example%00\r\n\r\n",
         400),
    ABAD("[17] Host pct-encoded letter", "GET / HTTP/1.1\r\nHost: a%41\r\n\r\n", 400),
    ABAD("[17] Host '!'", "GET / HTTP/1.1\r\nHost: a!\r\n\r\n", 400),
    ABAD("[17] Host '$'", "GET / HTTP/1.1\r\nHost: a$b\r\n\r\n", 400),
    ABAD("[17] Host '&'", "GET / HTTP/1.1\r\nHost: a&b\r\n\r\n", 400),
    ABAD("[17] Host quote", "GET / HTTP/1.1\r\nHost: a'b\r\n\r\n", 400),
    ABAD("[17] Host parentheses", "GET / HTTP/1.1\r\nHost: a(b)\r\n\r\n", 400),
    ABAD("[17] Host '*'", "GET / HTTP/1.1\r\nHost: *.a\r\n\r\n", 400),
    ABAD("[17] Host '+'", "GET / HTTP/1.1\r\nHost: a+b\r\n\r\n", 400),
    ABAD("[17] Host ';'", "GET / HTTP/1.1\r\nHost: internal.example;x\r\n\r\n", 400),
    ABAD("[17] Host '='", "GET / HTTP/1.1\r\nHost: a=b\r\n\r\n", 400),
    ABAD("[17] Host '~'", "GET / HTTP/1.1\r\nHost: a~b\r\n\r\n", 400),
    ABAD("[17] Host empty label", "GET / HTTP/1.1\r\nHost: internal..example\r\n\r\n", 400),
    ABAD("[17] Host leading dot", "GET / HTTP/1.1\r\nHost: .internal.example\r\n\r\n", 400),
    ABAD("[17] Host only a dot", "GET / HTTP/1.1\r\nHost: .\r\n\r\n", 400),
    ABAD("[17] Host two trailing dots", "GET / HTTP/1.1\r\nHost: a..\r\n\r\n", 400),
    ABAD("[18] absolute-form pct-encoded host", "GET http://internal%2eexample/ HTTP/1.1\r\n"
         "Host: a\r\n\r\n", 400),
    ABAD("[17] Host obs-text", "GET / HTTP/1.1\r\nHost: \xe9t\xe9\r\n\r\n", 400),
    ABAD("[17] Host IPv6 unclosed", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
    ABAD("[17] Host IPv6 garbage after", "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400),
    ABAD("[17] Host IPv6 bad hex", "GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n", 400),
    ABAD("[17] Host IPv6 9 groups", "GET / HTTP/1.1\r\nHost: [1:2:3:4:5:6:7:8:9]\r\n\r\n", 400),
    ABAD("[17] Host IPv6 7 groups", "GET / HTTP/1.1\r\nHost: [1:2:3:4:5:6:7]\r\n\r\n", 400),
    ABAD("[17] Host IPv6 two ::", "GET / HTTP/1.1\r\nHost: [1::2::3]\r\n\r\n", 400),
    ABAD("[17] Host IPv6 5-digit group", "GET / HTTP/1.1\r\nHost: [12345::]\r\n\r\n", 400),
    ABAD("[17] Host IPv6 trailing colon", "GET / HTTP/1.1\r\nHost: [1::2:]\r\n\r\n", 400),
    ABAD("[17] Host IPv6 bad v4 tail", "GET / HTTP/1.1\r\nHost: [::1.2.3.256]\r\n\r\n", 400),
    ABAD("[17] Host IPv6 v4 leading zero", "GET / HTTP/1.1\r\nHost: [::1.2.3.04]\r\n\r\n", 400),
    ABAD("[17] Host IPv6 short v4 tail", "GET / HTTP/1.1\r\nHost: [::1.2.3:4]\r\n\r\n", 400),
    ABAD("[17] Host IPv6 v4 tail too long", "GET / HTTP/1.1\r\nHost: [::1.2.3.4.5]\r\n\r\n", 400),
    ABAD("[17] Host IPv6 v4 not last", "GET / HTTP/1.1\r\nHost: [::1.2.3.4:1]\r\n\r\n", 400),
    ABAD("[17] Host IPv6 8 groups and ::", "GET / HTTP/1.1\r\nHost: [1:2:3:4::5:6:7:8]\r\n\r\n",
         400),
    ABAD("[17] Host IPv6 single colon start", "GET / HTTP/1.1\r\nHost: [:1::2]\r\n\r\n", 400),
    ABAD("[17] Host IPv6 zone", "GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n", 400),
    ABAD("[17] Host IPvFuture", "GET / HTTP/1.1\r\nHost: [v1.x]\r\n\r\n", 400),
    ABAD("[17] Host empty brackets", "GET / HTTP/1.1\r\nHost: []\r\n\r\n", 400),
    /* [18] absolute-form */
    ABAD("[18] absolute-form double port", "GET http://a:80:80/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ABAD("[18] absolute-form userinfo", "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ABAD("[18] absolute-form user:pass", "GET http://u:p@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ABAD("[18] scheme https+x", "GET https+x://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ABAD("[18] scheme ftp", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ABAD("[18] scheme http:/", "GET http:/a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ABAD("[18] empty authority", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ABAD("[18] empty authority no path", "GET http:// HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ABAD("[18] absolute-form bad host", "GET http://a,b/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ABAD("[18] absolute-form still needs Host", "GET http://a/ HTTP/1.1\r\n\r\n", 400),
    ABAD("[18] absolute-form with invalid Host", "GET http://a/ HTTP/1.1\r\nHost: a b\r\n\r\n",
         400),
    PBAD("[18] fragment", "GET /x#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("[18] fragment in absolute-form", "GET http://a/#f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    /* [19] target forms */
    ABAD("[19] GET *", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ABAD("[19] OPTIONS *x", "OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ABAD("[19] authority-form without CONNECT", "GET a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ABAD("[19] relative target", "GET x/y HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ABAD("[19] CONNECT refused", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405),
    ABAD("[19] CONNECT with body", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 3\r\n"
         "\r\nabc", 405, .head_len = 58),
    ABAD("[19] CONNECT origin-form", "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 405),
    /* [20] request line */
    PBAD("[20] G ET", "G ET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("[20] GET\\t/", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("[20] tab before version", "GET /\tHTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("[20] HTTP/1.11", "GET / HTTP/1.11\r\nHost: a\r\n\r\n", 400),
    PBAD("[20] HTTP/10.0", "GET / HTTP/10.0\r\nHost: a\r\n\r\n", 400),
    PBAD("[20] http/1.1", "GET / http/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("[20] HTTP/1.0 x", "GET / HTTP/1.0 x\r\n\r\n", 400),
    PBAD("[20] HTTP/0.9 (no version)", "GET /\r\n\r\n", 400),
    PBAD("[20] no version, trailing SP", "GET / \r\nHost: a\r\n\r\n", 400),
    PBAD("[20] HTTP/1", "GET / HTTP/1\r\nHost: a\r\n\r\n", 400),
    PBAD("[20] HTTP/1.x", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400),
    PBAD("[20] HTTP/a.1", "GET / HTTP/a.1\r\nHost: a\r\n\r\n", 400),
    PBAD("[20] trailing SP after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
    PBAD("[20] two SP after method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("[20] two SP after target", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("[20] empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("[20] method only", "GET\r\n\r\n", 400),
    PBAD("[20] DEL in method", "GE\x7fT / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("[20] '@' in method", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("[20] HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    PBAD("[20] HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
    PBAD("[20] HTTP/0.9 written", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
    PBAD("[20] HTTP/3.0", "GET / HTTP/3.0\r\n\r\n", 505),
    PBAD("[20] HTTP/2.0 then bare CR", "GET / HTTP/2.0\r\r\n\r\n", 400),
    PBAD("too many leading CRLFs",
         "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("leading SP", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    /* target bytes */
    PBAD("CTL in target", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("NUL in target", "GET /a\0 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("DEL in target", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("obs-text in target", "GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("tab in target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    PBAD("LF in target", "GET /a\nb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    /* [22] Expect */
    ABAD("[22] Expect: y 100-continue",
         "PUT /" H11 "Content-Length: 1\r\nExpect: y 100-continue\r\n"
         "\r\n", 417),
    ABAD("[22] Expect: foo", "GET /" H11 "Expect: foo\r\n\r\n", 417),
    ABAD("[22] Expect: 100-continue, foo", "GET /" H11 "Expect: 100-continue, foo\r\n\r\n", 417),
    ABAD("[22] Expect empty", "GET /" H11 "Expect:\r\n\r\n", 417),
    ABAD("[22] second Expect unknown", "GET /" H11 "Expect: 100-continue\r\nExpect: x\r\n\r\n",
         417),
    /* [28] limits */
    PBAD("[28] target one over max_target", "GET /123456789abcdefg HTTP/1.1\r\nHost: a\r\n\r\n",
         414, .max_target = 16),
    PBAD("[28] long target then invalid byte", "GET /123456789abcdefg\x01 HTTP/1.1\r\n\r\n",
         414, .max_target = 16),
    PBAD("[28] max_head reached in target", "GET /0123456789012345678901234567890123456789",
         414, .max_head = 20),
    PBAD("[28] max_head reached in headers", "GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789",
         431, .max_head = 30),
    PBAD("[28] head one over max_head", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 431, .max_head = 26),
    PBAD("[28] max_head counted after leading CRLFs", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
         431, .max_head = 26),
    PBAD("[28] one field too many", "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD: 3\r\n\r\n",
         431, .max_headers = 3),
    PBAD("[28] max_headers 0", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 431, .max_headers = 0xffff0000),
};

/* ---- responses ---------------------------------------------------------------------- */

typedef struct {
    const char  *name;
    const char  *raw;
    size_t       len;
    int          at;            /* AT_OK, AT_PARSE, AT_ANALYZE */
    pt_method    req;           /* the request's method */
    unsigned     status;
    unsigned     version;       /* 0: 11 */
    pt_body_kind body;
    const char  *cl;            /* NULL: -1 */
    const char  *flags;         /* k keepalive, u upgrade */
    const char  *reason;
    size_t       head_len;
    size_t       max_head;
} svec;

#define SOK(nm, raw, ...)  { .name = nm, R(raw), .at = AT_OK, __VA_ARGS__ }
#define SPBAD(nm, raw, ...) { .name = nm, R(raw), .at = AT_PARSE, __VA_ARGS__ }
#define SABAD(nm, raw, ...) { .name = nm, R(raw), .at = AT_ANALYZE, __VA_ARGS__ }

static const svec resps[] = {
    SOK("200 with CL", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", .status = 200,
        .body = PT_BODY_LENGTH, .cl = "5", .flags = "k", .reason = "OK",
        .head_len = sizeof("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n") - 1),
    SOK("200 chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", .status = 200,
        .body = PT_BODY_CHUNKED, .flags = "k"),
    SOK("200 close-delimited", "HTTP/1.1 200 OK\r\n\r\n", .status = 200, .body = PT_BODY_CLOSE,
        .flags = ""),
    SOK("200 Connection: close",
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        .status = 200, .body = PT_BODY_LENGTH, .cl = "0", .flags = ""),
    SOK("reason with spaces and obs-text",
        "HTTP/1.1 404 Not \xe9 Found \r\nContent-Length: 0\r\n\r\n",
        .status = 404, .body = PT_BODY_LENGTH, .cl = "0", .flags = "k",
        .reason = "Not \xe9 Found "),
    SOK("no reason, no SP", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", .status = 200,
        .body = PT_BODY_LENGTH, .cl = "0", .flags = "k", .reason = ""),
    SOK("empty reason", "HTTP/1.1 503 \r\nContent-Length: 0\r\n\r\n", .status = 503,
        .body = PT_BODY_LENGTH, .cl = "0", .flags = "k", .reason = ""),
    SOK("[29] 204", "HTTP/1.1 204 No Content\r\n\r\n", .status = 204, .body = PT_BODY_NONE,
        .flags = "k"),
    SOK("[29] 304 with CL", "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n",
        .status = 304, .body = PT_BODY_NONE, .cl = "100", .flags = "k"),
    SOK("[29] HEAD response with CL", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
        .req = PT_M_HEAD, .status = 200, .body = PT_BODY_NONE, .cl = "100", .flags = "k"),
    SOK("[29] HEAD response chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        .req = PT_M_HEAD, .status = 200, .body = PT_BODY_NONE, .flags = "k"),
    SOK("HEAD response without length", "HTTP/1.1 200 OK\r\n\r\n", .req = PT_M_HEAD,
        .status = 200, .body = PT_BODY_NONE, .flags = "k"),
    SOK("101",
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        .status = 101, .body = PT_BODY_NONE, .flags = "u"),
    SOK("100 Continue", "HTTP/1.1 100 Continue\r\n\r\n", .status = 100, .body = PT_BODY_NONE,
        .flags = "k"),
    SOK("103 Early Hints", "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
        .status = 103, .body = PT_BODY_NONE, .flags = "k"),
    SOK("[23] 1.0 without length", "HTTP/1.0 200 OK\r\n\r\n", .status = 200, .version = 10,
        .body = PT_BODY_CLOSE, .flags = ""),
    SOK("[23] 1.0 with CL", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", .status = 200,
        .version = 10, .body = PT_BODY_LENGTH, .cl = "2", .flags = "",
        .head_len = sizeof("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n") - 1),
    SOK("[23] 1.0 keep-alive with CL", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
        "Content-Length: 2\r\n\r\n", .status = 200, .version = 10, .body = PT_BODY_LENGTH,
        .cl = "2", .flags = "k"),
    SOK("[23] 1.0 keep-alive without length", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n",
        .status = 200, .version = 10, .body = PT_BODY_CLOSE, .flags = ""),
    SOK("599", "HTTP/1.1 599 X\r\nContent-Length: 0\r\n\r\n", .status = 599,
        .body = PT_BODY_LENGTH, .cl = "0", .flags = "k"),

    SPBAD("[7] obs-fold in response", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
    SPBAD("bare LF response", "HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
    SPBAD("bare LF in field", "HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n"),
    SPBAD("bare CR in field", "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n"),
    SPBAD("NUL in field", "HTTP/1.1 200 OK\r\nX: a\0\r\n\r\n"),
    SPBAD("NUL in reason", "HTTP/1.1 200 O\0K\r\n\r\n"),
    SPBAD("space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n"),
    SPBAD("status 99", "HTTP/1.1 099 X\r\n\r\n"),
    SPBAD("status 600", "HTTP/1.1 600 X\r\n\r\n"),
    SPBAD("2-digit status", "HTTP/1.1 20 OK\r\n\r\n"),
    SPBAD("4-digit status", "HTTP/1.1 2000 OK\r\n\r\n"),
    SPBAD("no SP after status", "HTTP/1.1 200OK\r\n\r\n"),
    SPBAD("two SP before status", "HTTP/1.1  200 OK\r\n\r\n"),
    SPBAD("HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n"),
    SPBAD("HTTP/0.9", "HTTP/0.9 200 OK\r\n\r\n"),
    SPBAD("http/1.1", "http/1.1 200 OK\r\n\r\n"),
    SPBAD("HTTP/1.10", "HTTP/1.10 200 OK\r\n\r\n"),
    SPBAD("leading CRLF", "\r\nHTTP/1.1 200 OK\r\n\r\n"),
    SPBAD("not HTTP", "SSH-2.0-OpenSSH\r\n"),
    SPBAD("response max_head", "HTTP/1.1 200 OK\r\nX: 0123456789\r\n\r\n", .max_head = 20),
    SABAD("[29] two CL", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
    SABAD("[29] CL list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n"),
    SABAD("[29] CL invalid", "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n"),
    SABAD("[29] CL 20 digits", "HTTP/1.1 200 OK\r\nContent-Length: 12345678901234567890\r\n\r\n"),
    SABAD("[29] CL + TE",
          "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
    SABAD("[29] TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
    SABAD("[29] TE gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
    SABAD("[29] two TE", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
          "Transfer-Encoding: chunked\r\n\r\n"),
    SABAD("[29] 204 with CL", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"),
    SABAD("[29] 204 with TE", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"),
    SABAD("[29] 100 with CL", "HTTP/1.1 100 Continue\r\nContent-Length: 0\r\n\r\n"),
    SABAD("[29] 101 with TE", "HTTP/1.1 101 Switching\r\nTransfer-Encoding: chunked\r\n\r\n"),
    SABAD("[29] 304 with TE", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"),
    SABAD("[29] 304 with two CL", "HTTP/1.1 304 Not Modified\r\nContent-Length: 1\r\n"
          "Content-Length: 2\r\n\r\n"),
    SABAD("[29] HEAD response with invalid CL", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
          .req = PT_M_HEAD),
    SABAD("[30] chunked in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
};

/* ---- chunked decoder ---------------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *raw;
    size_t      len;
    int         rc;         /* PT_DONE, PT_AGAIN or PT_ERROR */
    const char *data;       /* the decoded bytes */
    size_t      consumed;   /* PT_DONE: where the message ends; 0: all of it */
} cvec;

#define C(nm, raw, want, out, ...) { .name = nm, R(raw), .rc = want, .data = out, __VA_ARGS__ }

static const cvec chunks[] = {
    C("one chunk", "5\r\nhello\r\n0\r\n\r\n", PT_DONE, "hello"),
    C("two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", PT_DONE, "hello world"),
    C("empty body", "0\r\n\r\n", PT_DONE, ""),
    C("hex sizes", "A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n", PT_DONE,
      "0123456789abcdefghijk"),
    C("leading zeros", "005\r\nhello\r\n000\r\n\r\n", PT_DONE, "hello"),
    C("16 digits", "0000000000000005\r\nhello\r\n0\r\n\r\n", PT_DONE, "hello"),
    C("bytes after the message", "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n", PT_DONE, "abc",
      sizeof("3\r\nabc\r\n0\r\n\r\n") - 1),
    C("[12] extension", "5;a=b\r\nhello\r\n0\r\n\r\n", PT_DONE, "hello"),
    C("[12] extension without value", "5;a\r\nhello\r\n0\r\n\r\n", PT_DONE, "hello"),
    C("[12] extension BWS", "5 \t; a = b ;c\t=\td\r\nhello\r\n0\r\n\r\n", PT_DONE, "hello"),
    C("[12] extension name BWS then ;", "5;a ;b\r\nhello\r\n0\r\n\r\n", PT_DONE, "hello"),
    C("[12] quoted extension", "5;a=\"q s;\\\"x\\\\\"\r\nhello\r\n0\r\n\r\n", PT_DONE, "hello"),
    C("[12] quoted extension with obs-text", "5;a=\"\xe9\"\r\nhello\r\n0\r\n\r\n", PT_DONE,
      "hello"),
    C("[12] longer names and values", "5;ab=cd;e;f=\"\";gh\r\nhello\r\n0\r\n\r\n", PT_DONE,
      "hello"),
    C("[12] several extensions", "5;a=b;c=d;e\r\nhello\r\n0;x=y\r\n\r\n", PT_DONE, "hello"),
    C("[13] trailers dropped", "5\r\nhello\r\n0\r\nX-T: 1\r\nContent-Length: 5\r\n"
      "Transfer-Encoding: chunked\r\nHost: evil\r\n\r\n", PT_DONE, "hello"),
    C("trailer empty value", "0\r\nX:\r\n\r\n", PT_DONE, ""),
    C("incomplete data", "5\r\nhel", PT_AGAIN, "hel"),
    C("incomplete after data", "5\r\nhello\r\n", PT_AGAIN, "hello"),
    C("incomplete trailer", "0\r\nX: 1\r\n", PT_AGAIN, ""),
    C("incomplete: nothing", "", PT_AGAIN, ""),

    C("[10] 0x5", "0x5\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[10] +5", "+5\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[10] -5", "-5\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[10] leading SP", " 5\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[10] empty size", "\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[10] trailing SP", "5 \r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[10] trailing tab", "5\t\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[10] 17 digits", "00000000000000005\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[10] 17 digits overflow", "10000000000000000\r\n", PT_ERROR, ""),
    C("[10] non-hex", "g\r\n", PT_ERROR, ""),
    C("[10] size then junk", "5x\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[11] data not followed by CRLF", "5\r\nhello0\r\n\r\n", PT_ERROR, "hello"),
    C("[11] data followed by LF", "5\r\nhello\nX", PT_ERROR, "hello"),
    C("[11] data followed by CR CR", "5\r\nhello\r\r", PT_ERROR, "hello"),
    C("[11] data too long", "3\r\nhello\r\n0\r\n\r\n", PT_ERROR, "hel"),
    C("[9] bare LF after size", "5\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[9] bare LF after last chunk", "5\r\nhello\r\n0\n\r\n", PT_ERROR, "hello"),
    C("[9] bare LF final line", "0\r\n\n", PT_ERROR, ""),
    C("[9] bare LF in trailer", "0\r\nX: a\n\r\n", PT_ERROR, ""),
    C("[8] bare CR after size", "5\rhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[8] bare CR final line", "0\r\n\r\r", PT_ERROR, ""),
    C("[8] bare CR in trailer", "0\r\nX: a\rb\r\n\r\n", PT_ERROR, ""),
    C("[12] ext then CR CR (h2o)", "41;a=b\r\r", PT_ERROR, ""),
    C("[12] ext with bare LF", "5;a=b\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[12] ext name with bare LF", "5;a\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[12] quoted ext with CR", "5;a=\"x\ry\"\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[12] quoted ext with LF", "5;a=\"x\ny\"\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[12] quoted-pair with CR", "5;a=\"x\\\ry\"\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[12] unterminated quote", "5;a=\"x\r\nhello\r\n", PT_ERROR, ""),
    C("[12] ext without name", "5;=b\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[12] empty ext", "5;\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[12] empty ext between", "5;;a\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[12] ext empty value", "5;a=\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[12] ext value with space", "5;a=b c\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[12] ext name with space", "5;a b\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[12] ext trailing BWS", "5;a=b \r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[12] ext with NUL", "5;a=b\0\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("[12] ext with comma", "5;a=b,c\r\nhello\r\n0\r\n\r\n", PT_ERROR, ""),
    C("trailer obs-fold", "0\r\nX: a\r\n b\r\n\r\n", PT_ERROR, ""),
    C("trailer space before colon", "0\r\nX : a\r\n\r\n", PT_ERROR, ""),
    C("trailer empty name", "0\r\n: a\r\n\r\n", PT_ERROR, ""),
    C("trailer without colon", "0\r\nX\r\n\r\n", PT_ERROR, ""),
    C("trailer NUL", "0\r\nX: \0\r\n\r\n", PT_ERROR, ""),
    C("trailer DEL", "0\r\nX: \x7f\r\n\r\n", PT_ERROR, ""),
};

/* ---- path normalisation ------------------------------------------------------------- */

static const struct {
    const char *in;
    size_t      len;
    const char *out;        /* NULL: PT_ERROR */
    const char *why;        /* on PT_ERROR: a word of the reason */
} paths[] = {
#define P(in, out) { in, sizeof(in) - 1, out, NULL }
#define PR(in, why) { in, sizeof(in) - 1, NULL, why }
    /* "//", ".", ".." */
    P("/", "/"),
    P("/a/b", "/a/b"),
    P("/a/b/", "/a/b/"),
    P("//a///b", "/a/b"),
    P("/a//", "/a/"),
    P("/a/./b", "/a/b"),
    P("/./", "/"),
    P("/.", "/"),
    P("/a/.", "/a/"),
    P("/a/../b", "/b"),
    P("/a/b/..", "/a/"),
    P("/a/b/../", "/a/"),
    P("/a/..", "/"),
    P("/a/b/c/../../d", "/a/d"),
    P("/a/./../b/./c/", "/b/c/"),
    P("/x/../admin", "/admin"),
    PR("/..", "root"),
    PR("/../a", "root"),
    PR("/a/../..", "root"),
    PR("/a/../../b", "root"),
    P("/...", "/..."),
    P("/.a/..b/c.", "/.a/..b/c."),
    P("/a/.../..", "/a/"),
    /* percent-decoding */
    P("/%41%62c", "/Abc"),
    P("/a%2eb", "/a.b"),
    P("/%c3%a9", "/\xc3\xa9"),
    P("/%C3%A9", "/\xc3\xa9"),
    P("/%3b", "/;"),                    /* a decoded ';' is data, not a parameter */
    P("/a%3bx/b", "/a;x/b"),
    P("/%20", "/ "),
    P("/100%25", "/100%"),              /* a '%' not followed by two hex digits */
    P("/100%25off", "/100%off"),
    P("/%25a", "/%a"),
    PR("/%zz", "percent-encoding"),
    PR("/%4", "percent-encoding"),
    PR("/a%", "percent-encoding"),
    PR("/a%4", "percent-encoding"),
    PR("/%g1", "percent-encoding"),
    PR("/%1g", "percent-encoding"),
    PR("/%u002e", "percent-encoding"),  /* IIS's %u form */
    PR("/%%41", "percent-encoding"),
    /* NUL */
    PR("/%00", "NUL"),
    PR("/a%00b", "NUL"),
    PR("/a%00", "NUL"),
    PR("/a\0b", "NUL"),
    PR("/a;x%00", "NUL"),               /* in a parameter too */
    /* double encoding */
    PR("/x/%252e%252e/admin", "double"),
    PR("/%2541", "double"),
    PR("/%25%34%31", "double"),         /* "%41" after one decoding, however spelled */
    PR("/%25a%31", "double"),
    PR("/a;%252f", "double"),
    /* UTF-8 after decoding */
    P("/%e2%82%ac", "/\xe2\x82\xac"),
    P("/%f0%9f%98%80", "/\xf0\x9f\x98\x80"),
    P("/%ed%9f%bf", "/\xed\x9f\xbf"),   /* U+D7FF, just below the surrogates */
    P("/%f4%8f%bf%bf", "/\xf4\x8f\xbf\xbf"), /* U+10FFFF */
    PR("/%c0%ae%c0%ae/admin", "overlong"),
    PR("/%c0%af", "overlong"),
    PR("/%c1%bf", "overlong"),
    PR("/%e0%80%ae", "UTF-8"),          /* overlong, three bytes */
    PR("/%f0%80%80%ae", "UTF-8"),       /* overlong, four bytes */
    PR("/%ed%a0%80", "UTF-8"),          /* a surrogate */
    PR("/%f4%90%80%80", "UTF-8"),       /* past U+10FFFF */
    PR("/%f5%80%80%80", "UTF-8"),
    PR("/%ff", "UTF-8"),
    PR("/%80", "UTF-8"),                /* a lone continuation byte */
    PR("/%e9", "UTF-8"),                /* Latin-1 */
    PR("/%c3", "UTF-8"),                /* cut short at the end */
    PR("/%c3/", "UTF-8"),               /* cut short by a '/' */
    PR("/a;%f1/%9f%98%80", "UTF-8"),    /* begun in a parameter, ended after the '/' */
    PR("/a;%c3/%a9", "UTF-8"),
    PR("/%c3%c3%a9", "UTF-8"),
    PR("/%e2%82", "UTF-8"),
    P("/\xc3\xa9", "/\xc3\xa9"),          /* raw bytes (the parser refuses them first) */
    PR("/\xe9", "UTF-8"),
    /* backslash */
    PR("/x\\..\\admin", "backslash"),
    PR("/\\admin", "backslash"),
    PR("/%5cadmin", "backslash"),
    PR("/%5Cadmin", "backslash"),
    PR("/a;\\", "backslash"),
    /* ;params */
    P("/admin;jsessionid=1", "/admin"),
    P("/a;x/b;y=1;z/c", "/a/b/c"),
    P("/a;", "/a"),
    P("/;x/a", "/a"),
    P("/a/;x", "/a/"),
    P("/a;x/", "/a/"),
    P("/a;x=%41", "/a"),
    P("/a;x/../b", "/b"),               /* a real ".." removes the segment */
    PR("/x/..;/admin", "parameter"),
    PR("/x/..;x=1/admin", "parameter"),
    PR("/x/.;/admin", "parameter"),
    PR("/x/..;", "parameter"),
    PR("/a;%2f..%2f..%2fadmin", "slash"),  /* a decode-first origin sees "/a;/../../admin" */
    PR("/a;x%2Fb", "slash"),
    PR("/a;%c0%ae", "overlong"),
    /* dot-segments spelled otherwise */
    PR("/%2e%2e/", "percent-encoding"),
    PR("/a/%2e%2e/b", "percent-encoding"),
    PR("/a/%2E%2e", "percent-encoding"),
    PR("/a/.%2e/b", "percent-encoding"),
    PR("/a/%2e./b", "percent-encoding"),
    PR("/a/%2E/b", "percent-encoding"),
    PR("/a/%2e", "percent-encoding"),
    /* encoded slashes */
    P("/a%2fb", "/a/b"),
    P("/a%2F%2Fb", "/a/b"),
    P("/a%2fb/./c", "/a/b/c"),
    P("/%2f", "/"),
    PR("/a%2fb/../../c", "encoded slash"),
    PR("/a/..%2fb", "encoded slash"),
    PR("/a%2f../b", "encoded slash"),
    PR("/a/b/../c%2fd", "encoded slash"),
    /* not a path */
    PR("", "'/'"),
    PR("a/b", "'/'"),
    PR("%2fa", "'/'"),
    PR("\\a", "'/'"),
#undef P
#undef PR
};

#endif
