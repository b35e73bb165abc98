/*
 * Media: type by bytes, sanitizing (EXIF/XMP/GPS gone, rotation applied), derivative
 * sizes, refusals (bombs, truncation, HTML, SVG, empty) and the content-addressed store.
 * Every image is made here with libvips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <vips/vips.h>

#include "media_image.h"
#include "media_store.h"

#include "sp/banned.h"

/* ------------------------------------------------------------------ image helpers */

/* Whether @p n bytes of @p needle occur in @p len bytes at @p hay (memmem is GNU-only). */
static bool has_bytes(const void *hay, size_t len, const char *needle, size_t n)
{
    const unsigned char *h = hay;

    for (size_t i = 0; n <= len && i <= len - n; i++)
        if (memcmp(h + i, needle, n) == 0)
            return true;
    return false;
}

/* A w x h 8-bit sRGB image of noise (noise does not compress to nothing). Owned. */
static VipsImage *noise_image(int w, int h)
{
    VipsImage *n[3] = {NULL, NULL, NULL}, *joined = NULL, *u8 = NULL, *out = NULL;

    for (int i = 0; i < 3; i++)
        assert_int_equal(vips_gaussnoise(&n[i], w, h, "mean", 128.0, "sigma", 40.0 + i * 5, NULL),
                         0);
    assert_int_equal(vips_bandjoin(n, &joined, 3, NULL), 0);
    assert_int_equal(vips_cast_uchar(joined, &u8, NULL), 0);
    assert_int_equal(vips_copy(u8, &out, "interpretation", VIPS_INTERPRETATION_sRGB, NULL), 0);
    for (int i = 0; i < 3; i++)
        g_object_unref(n[i]);
    g_object_unref(joined);
    g_object_unref(u8);
    return out;
}

/* Encode @p img as @p type; 0 or -1 when this libvips cannot. *buf owned: g_free. */
static int save_as(VipsImage *img, enum cmd__media_type type, void **buf, size_t *len)
{
    switch (type) {
    case CMD_MEDIA_JPEG:
        return vips_jpegsave_buffer(img, buf, len, "Q", 85, NULL);
    case CMD_MEDIA_PNG:
        return vips_pngsave_buffer(img, buf, len, NULL);
    case CMD_MEDIA_WEBP:
        return vips_webpsave_buffer(img, buf, len, NULL);
    case CMD_MEDIA_GIF:
        return vips_gifsave_buffer(img, buf, len, NULL);
    case CMD_MEDIA_HEIC:
        return vips_heifsave_buffer(img, buf, len, "compression",
                                    VIPS_FOREIGN_HEIF_COMPRESSION_HEVC, NULL);
    case CMD_MEDIA_AVIF:
        return vips_heifsave_buffer(img, buf, len, "compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1,
                                    "effort", 0, NULL);
    case CMD_MEDIA_UNKNOWN:
        break;
    }
    return -1;
}

/* Load bytes with libvips (header and pixels) for checking an output. Owned. */
static VipsImage *load(const void *buf, size_t len)
{
    VipsImage *img = vips_image_new_from_buffer(buf, len, "", NULL);
    VipsImage *mem;

    assert_non_null(img);
    mem = vips_image_copy_memory(img);
    assert_non_null(mem);
    g_object_unref(img);
    return mem;
}

/* No EXIF, XMP, IPTC, ICC, orientation or "exif-*" field on the image, nor in its bytes. */
static void assert_no_metadata(const struct cmd__media_blob *b)
{
    VipsImage *img = load(b->data, b->size_bytes);
    gchar **fields = vips_image_get_fields(img);

    assert_int_equal(vips_image_get_typeof(img, VIPS_META_EXIF_NAME), 0);
    assert_int_equal(vips_image_get_typeof(img, VIPS_META_XMP_NAME), 0);
    assert_int_equal(vips_image_get_typeof(img, VIPS_META_IPTC_NAME), 0);
    assert_int_equal(vips_image_get_typeof(img, VIPS_META_ICC_NAME), 0);
    for (gchar **f = fields; *f; f++) {
        if (strncmp(*f, "exif-", 5) == 0 || strcmp(*f, VIPS_META_ORIENTATION) == 0)
            fail_msg("output keeps metadata field \"%s\"", *f);
    }
    g_strfreev(fields);
    g_object_unref(img);
    assert_false(has_bytes(b->data, b->size_bytes, "Exif\0\0", 6));
    assert_false(has_bytes(b->data, b->size_bytes, "EXIF", 4)); /* a WebP EXIF chunk */
    assert_false(has_bytes(b->data, b->size_bytes, "GPSLatitude", 11));
    assert_false(has_bytes(b->data, b->size_bytes, "ns.adobe.com/xap", 16));
}

static void assert_dims(const struct cmd__media_blob *b, unsigned w, unsigned h)
{
    VipsImage *img = load(b->data, b->size_bytes);

    assert_int_equal(b->width_px, w);
    assert_int_equal(b->height_px, h);
    assert_int_equal(vips_image_get_width(img), w);
    assert_int_equal(vips_image_get_height(img), h);
    g_object_unref(img);
}

static void test_limits(struct cmd__media_limits *lim)
{
    cmd__media_limits_init(lim);
    lim->sizes_px[0] = 100;
    lim->sizes_px[1] = 200;
    lim->sizes_px[2] = 1000; /* larger than the 400 x 300 test images: kept at 400 x 300 */
    lim->n_sizes = 3;
}

/* ------------------------------------------------------------------ image tests */

static void check_format(enum cmd__media_type type)
{
    static const char digits[] = "0123456789abcdef";
    struct cmd__media_limits lim;
    struct cmd__media_result res;
    struct sp_errbuf eb = {{0}, {0}};
    enum cmd__media_type sniffed;
    VipsImage *img = noise_image(400, 300);
    unsigned char md[32];
    char hex[65];
    void *buf = NULL;
    size_t len = 0;

    if (save_as(img, type, &buf, &len) != 0) {
        print_message("# skip %s: this libvips cannot write it\n", cmd__media_type_name(type));
        vips_error_clear();
        g_object_unref(img);
        return;
    }
    g_object_unref(img);
    assert_int_equal(cmd__media_sniff(buf, len, &sniffed), 0);
    assert_int_equal(sniffed, type);
    test_limits(&lim);
    if (cmd__media_process(buf, len, &lim, &res, &eb) != 0)
        fail_msg("%s: %s", cmd__media_type_name(type), eb.msg);
    assert_int_equal(res.type, type);
    assert_string_equal(res.content_type, cmd__media_type_name(type));
    assert_string_equal(res.original_content_type, cmd__media_type_name(type));
    assert_int_equal(res.width_px, 400);
    assert_int_equal(res.height_px, 300);
    assert_int_equal(cmd__media_sniff(res.original.data, res.original.size_bytes, &sniffed), 0);
    assert_int_equal(sniffed, type); /* re-encoded in its own format */
    assert_dims(&res.original, 400, 300);
    assert_no_metadata(&res.original); /* no saver adds any of its own */
    assert_int_equal(res.n_derivatives, 3);
    assert_int_equal(res.derivative_size_px[1], 200);
    assert_dims(&res.derivatives[0], 100, 75);
    assert_dims(&res.derivatives[1], 200, 150);
    assert_dims(&res.derivatives[2], 400, 300); /* never upscaled */
    for (size_t i = 0; i < res.n_derivatives; i++) {
        assert_int_equal(
            cmd__media_sniff(res.derivatives[i].data, res.derivatives[i].size_bytes, &sniffed), 0);
        assert_int_equal(sniffed, CMD_MEDIA_WEBP);
        assert_no_metadata(&res.derivatives[i]);
    }
    assert_int_equal(EVP_Digest(buf, len, md, NULL, EVP_sha256(), NULL), 1);
    for (size_t i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 0xF];
    }
    hex[64] = '\0';
    assert_string_equal(res.sha256_hex, hex);
    cmd__media_result_release(&res);
    assert_null(res.original.data);
    cmd__media_result_release(&res); /* released twice: a no-op */
    g_free(buf);
}

static void test_every_format(void **state)
{
    (void)state;
    check_format(CMD_MEDIA_JPEG);
    check_format(CMD_MEDIA_PNG);
    check_format(CMD_MEDIA_WEBP);
    check_format(CMD_MEDIA_GIF);
    check_format(CMD_MEDIA_HEIC);
    check_format(CMD_MEDIA_AVIF);
}

/* A PNG is a PNG whatever the client calls it: only the bytes are read. */
static void test_png_typed_by_content(void **state)
{
    struct cmd__media_limits lim;
    struct cmd__media_result res;
    enum cmd__media_type t;
    VipsImage *img = noise_image(64, 48);
    void *buf = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(vips_pngsave_buffer(img, &buf, &len, NULL), 0);
    assert_int_equal(cmd__media_sniff(buf, len, &t), 0);
    assert_int_equal(t, CMD_MEDIA_PNG);
    cmd__media_limits_init(&lim);
    assert_int_equal(cmd__media_process(buf, len, &lim, &res, NULL), 0);
    assert_string_equal(res.content_type, "image/png");
    assert_int_equal(cmd__media_sniff(res.original.data, res.original.size_bytes, &t), 0);
    assert_int_equal(t, CMD_MEDIA_PNG);
    assert_dims(&res.derivatives[0], 64, 48); /* 160 > 64: own size */
    cmd__media_result_release(&res);
    g_free(buf);
    g_object_unref(img);
}

static const char xmp_packet[] =
    "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF "
    "xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"><rdf:Description "
    "xmlns:exif=\"http://ns.adobe.com/exif/1.0/\" exif:GPSLatitude=\"51,30.0N\" "
    "xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\"/></rdf:RDF></x:xmpmeta>";

/* A JPEG with EXIF GPS, XMP, a Display P3 ICC profile and an orientation; g_free *buf. */
static void gps_jpeg(int orientation, void **buf, size_t *len)
{
    VipsImage *img = noise_image(400, 300), *copy = NULL;
    VipsBlob *p3 = NULL;

    assert_int_equal(vips_copy(img, &copy, NULL), 0);
    assert_int_equal(vips_profile_load("p3", &p3, NULL), 0);
    vips_image_set_blob_copy(copy, VIPS_META_ICC_NAME, VIPS_AREA(p3)->data, VIPS_AREA(p3)->length);
    vips_area_unref(VIPS_AREA(p3));
    vips_image_set_string(copy, "exif-ifd0-Make", "Stockpot test camera");
    vips_image_set_string(copy, "exif-ifd3-GPSLatitudeRef", "N");
    vips_image_set_string(copy, "exif-ifd3-GPSLatitude", "51/1 30/1 0/1");
    vips_image_set_string(copy, "exif-ifd3-GPSLongitudeRef", "W");
    vips_image_set_string(copy, "exif-ifd3-GPSLongitude", "0/1 7/1 0/1");
    vips_image_set_blob_copy(copy, VIPS_META_XMP_NAME, xmp_packet, sizeof(xmp_packet) - 1);
    vips_image_set_int(copy, VIPS_META_ORIENTATION, orientation);
    assert_int_equal(vips_jpegsave_buffer(copy, buf, len, NULL), 0);
    g_object_unref(copy);
    g_object_unref(img);
}

static void test_exif_gps_stripped(void **state)
{
    struct cmd__media_limits lim;
    struct cmd__media_result res;
    VipsImage *in;
    const char *lat = NULL;
    void *buf = NULL;
    size_t len = 0;

    (void)state;
    gps_jpeg(1, &buf, &len);
    in = vips_image_new_from_buffer(buf, len, "", NULL); /* the input really carries it */
    assert_non_null(in);
    assert_int_equal(vips_image_get_string(in, "exif-ifd3-GPSLatitude", &lat), 0);
    assert_non_null(strstr(lat, "51"));
    assert_int_not_equal(vips_image_get_typeof(in, VIPS_META_XMP_NAME), 0);
    assert_int_not_equal(vips_image_get_typeof(in, VIPS_META_ICC_NAME), 0);
    assert_true(has_bytes(buf, len, "Exif\0\0", 6));
    assert_true(has_bytes(buf, len, "GPSLatitude", 11));
    g_object_unref(in);

    test_limits(&lim);
    assert_int_equal(cmd__media_process(buf, len, &lim, &res, NULL), 0);
    assert_no_metadata(&res.original);
    for (size_t i = 0; i < res.n_derivatives; i++)
        assert_no_metadata(&res.derivatives[i]);
    cmd__media_result_release(&res);
    g_free(buf);
}

static void test_orientation_applied(void **state)
{
    struct cmd__media_limits lim;
    struct cmd__media_result res;
    void *buf = NULL;
    size_t len = 0;

    (void)state;
    gps_jpeg(6, &buf, &len); /* 6: the stored pixels need a 90 degree clockwise turn */
    test_limits(&lim);
    assert_int_equal(cmd__media_process(buf, len, &lim, &res, NULL), 0);
    assert_int_equal(res.width_px, 300);
    assert_int_equal(res.height_px, 400);
    assert_dims(&res.original, 300, 400);
    assert_dims(&res.derivatives[0], 75, 100);
    assert_dims(&res.derivatives[1], 150, 200);
    assert_no_metadata(&res.original); /* no orientation tag to rotate it twice */
    cmd__media_result_release(&res);
    g_free(buf);
}

/* A Display P3 colour comes out as the sRGB colour that looks the same, with no profile. */
static void test_icc_converted_to_srgb(void **state)
{
    static const double p3_rgb[3] = {40, 160, 60}, one[3] = {1, 1, 1};
    struct cmd__media_limits lim;
    struct cmd__media_result res;
    VipsImage *black = NULL, *flat = NULL, *tagged = NULL, *out;
    VipsBlob *p3 = NULL;
    double *px = NULL;
    void *buf = NULL;
    size_t len = 0;
    int n = 0;

    (void)state;
    assert_int_equal(vips_black(&black, 64, 64, "bands", 3, NULL), 0);
    assert_int_equal(vips_linear(black, &flat, one, p3_rgb, 3, "uchar", TRUE, NULL), 0);
    assert_int_equal(vips_copy(flat, &tagged, "interpretation", VIPS_INTERPRETATION_sRGB, NULL), 0);
    assert_int_equal(vips_profile_load("p3", &p3, NULL), 0);
    vips_image_set_blob_copy(tagged, VIPS_META_ICC_NAME, VIPS_AREA(p3)->data,
                             VIPS_AREA(p3)->length);
    vips_area_unref(VIPS_AREA(p3));
    assert_int_equal(vips_pngsave_buffer(tagged, &buf, &len, NULL), 0);
    cmd__media_limits_init(&lim);
    assert_int_equal(cmd__media_process(buf, len, &lim, &res, NULL), 0);
    assert_no_metadata(&res.original);
    out = load(res.original.data, res.original.size_bytes);
    assert_int_equal(vips_getpoint(out, &px, &n, 10, 10, NULL), 0);
    assert_int_equal(n, 3);
    /* P3 green is wider than sRGB's: less red, more green once converted (lcms2 gives 0, 163, 40)
     */
    assert_true(px[0] < 20 && px[1] > 160 && px[2] < 55);
    g_free(px);
    g_object_unref(out);
    cmd__media_result_release(&res);
    g_free(buf);
    g_object_unref(tagged);
    g_object_unref(flat);
    g_object_unref(black);
}

static uint32_t crc32_png(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFU;

    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320U & (0U - (c & 1U)));
    }
    return c ^ 0xFFFFFFFFU;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* A small real PNG whose IHDR claims @p w x @p h (CRC fixed up). *buf owned: g_free. */
static void bomb_png(uint32_t w, uint32_t h, void **buf, size_t *len)
{
    VipsImage *img = noise_image(16, 16);
    unsigned char *p;

    assert_int_equal(vips_pngsave_buffer(img, buf, len, NULL), 0);
    g_object_unref(img);
    p = *buf;
    assert_memory_equal(p + 12, "IHDR", 4); /* ISO/IEC 15948: IHDR is the first chunk */
    put_be32(p + 16, w);
    put_be32(p + 20, h);
    put_be32(p + 29, crc32_png(p + 12, 17));
}

/* A small real JPEG whose SOF frame header claims @p w x @p h. *buf owned: g_free. */
static void bomb_jpeg(unsigned w, unsigned h, void **buf, size_t *len)
{
    VipsImage *img = noise_image(16, 16);
    unsigned char *p;
    size_t i;

    assert_int_equal(vips_jpegsave_buffer(img, buf, len, NULL), 0);
    g_object_unref(img);
    p = *buf;
    for (i = 2; i + 9 < *len; i++)
        if (p[i] == 0xFF && (p[i + 1] == 0xC0 || p[i + 1] == 0xC2))
            break;
    assert_true(i + 9 < *len);
    /* T.81 B.2.2: FFC0 Lf(2) P(1) Y(2) X(2) */
    p[i + 5] = (unsigned char)(h >> 8);
    p[i + 6] = (unsigned char)h;
    p[i + 7] = (unsigned char)(w >> 8);
    p[i + 8] = (unsigned char)w;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long max_rss_kb(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void check_bomb(void *buf, size_t len, enum cmd__media_type type)
{
    struct cmd__media_limits lim;
    struct cmd__media_result res;
    struct sp_errbuf eb = {{0}, {0}};
    long rss_kb = max_rss_kb();
    double t0 = now_s();

    cmd__media_limits_init(&lim);
    assert_int_equal(cmd__media_process(buf, len, &lim, &res, &eb), SP_ETOOBIG);
    assert_true(now_s() - t0 < 0.5);
    assert_true(max_rss_kb() - rss_kb < 200L * 1024); /* the pixels are 2.7 GB */
    assert_string_equal(eb.field, "pixels");
    assert_non_null(strstr(eb.msg, "900000000"));
    assert_int_equal(res.type, type);
    assert_null(res.original.data);
    assert_int_equal(res.n_derivatives, 0);
}

static void test_pixel_bomb_refused(void **state)
{
    void *buf = NULL;
    size_t len = 0;

    (void)state;
    bomb_png(30000, 30000, &buf, &len);
    check_bomb(buf, len, CMD_MEDIA_PNG);
    g_free(buf);
    bomb_jpeg(30000, 30000, &buf, &len);
    check_bomb(buf, len, CMD_MEDIA_JPEG);
    g_free(buf);
}

static void test_truncated_jpeg_refused(void **state)
{
    struct cmd__media_limits lim;
    struct cmd__media_result res;
    struct sp_errbuf eb = {{0}, {0}};
    VipsImage *img = noise_image(400, 300);
    void *buf = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(vips_jpegsave_buffer(img, &buf, &len, NULL), 0);
    g_object_unref(img);
    cmd__media_limits_init(&lim);
    assert_int_equal(cmd__media_process(buf, len / 2, &lim, &res, &eb), SP_EINVAL);
    assert_int_equal(res.type, CMD_MEDIA_JPEG); /* a JPEG, but a broken one: 400 */
    assert_string_equal(eb.field, "content");
    assert_non_null(strstr(eb.msg, "does not decode")); /* the header was fine */
    assert_null(res.original.data);
    g_free(buf);
}

static void check_not_media(const char *text)
{
    struct cmd__media_limits lim;
    struct cmd__media_result res;
    struct sp_errbuf eb = {{0}, {0}};
    enum cmd__media_type t = CMD_MEDIA_PNG;

    assert_int_equal(cmd__media_sniff(text, strlen(text), &t), SP_EINVAL);
    assert_int_equal(t, CMD_MEDIA_UNKNOWN);
    cmd__media_limits_init(&lim);
    assert_int_equal(cmd__media_process(text, strlen(text), &lim, &res, &eb), SP_EINVAL);
    assert_int_equal(res.type, CMD_MEDIA_UNKNOWN); /* 415 */
    assert_string_equal(eb.field, "media_type");
    assert_null(res.original.data);
}

static void test_not_images_refused(void **state)
{
    enum cmd__media_type t = CMD_MEDIA_PNG;

    (void)state;
    check_not_media("<!DOCTYPE html><html><body><script>alert(1)</script></body></html>");
    check_not_media("<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\" "
                    "width=\"10\" height=\"10\"><script>alert(1)</script></svg>");
    check_not_media("<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>");
    check_not_media("#!/bin/sh\nrm -rf /\n");
    check_not_media("RIFF\x10\0\0\0WAVEfmt "); /* RIFF, but no WEBP */
    check_not_media("");
    assert_int_equal(cmd__media_sniff(NULL, 0, &t), SP_EINVAL);
    assert_int_equal(t, CMD_MEDIA_UNKNOWN);
}

/* Magic bytes alone are not an image, and bytes after a real image do not survive. */
static void test_polyglots(void **state)
{
    static const char html[] = "<html><script>alert(1)</script></html>";
    struct cmd__media_limits lim;
    struct cmd__media_result res;
    struct sp_errbuf eb = {{0}, {0}};
    VipsImage *img = noise_image(64, 48);
    unsigned char *both;
    void *buf = NULL;
    size_t len = 0;
    char fake[64];

    (void)state;
    cmd__media_limits_init(&lim);
    snprintf(fake, sizeof(fake), "GIF89a%s", html);
    assert_int_equal(cmd__media_process(fake, strlen(fake), &lim, &res, &eb), SP_EINVAL);
    assert_int_equal(res.type, CMD_MEDIA_GIF);
    assert_string_equal(eb.field, "content");

    assert_int_equal(vips_jpegsave_buffer(img, &buf, &len, NULL), 0);
    both = malloc(len + sizeof(html));
    assert_non_null(both);
    memcpy(both, buf, len);
    memcpy(both + len, html, sizeof(html));
    assert_int_equal(cmd__media_process(both, len + sizeof(html), &lim, &res, &eb), 0);
    assert_false(has_bytes(res.original.data, res.original.size_bytes, "<script>", 8));
    cmd__media_result_release(&res);
    free(both);
    g_free(buf);
    g_object_unref(img);
}

/* ------------------------------------------------------------------ store tests */

static const char sha_a[] = "ab12cd34000000000000000000000000000000000000000000000000000000ff";

struct store_fx {
    char root[64];
    struct cmd__media_store *st;
};

static int store_setup(void **state)
{
    struct store_fx *fx = calloc(1, sizeof(*fx));
    struct sp_errbuf eb = {{0}, {0}};

    if (fx == NULL)
        return -1;
    snprintf(fx->root, sizeof(fx->root), "/tmp/sp_media_XXXXXX");
    if (mkdtemp(fx->root) == NULL || chmod(fx->root, 0755) != 0)
        return -1;
    if (cmd__media_store_fs_open(fx->root, &fx->st, &eb) != 0)
        return -1;
    *state = fx;
    return 0;
}

/* rm -r @p path (the store's three levels); 0 or -1. NOLINTNEXTLINE(misc-no-recursion) */
static int rm_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    char sub[PATH_MAX];
    struct stat sb;
    int rc = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
        if (lstat(sub, &sb) == 0 && S_ISDIR(sb.st_mode))
            rc |= rm_tree(sub);
        else if (unlink(sub) != 0)
            rc = -1;
    }
    closedir(d);
    return rmdir(path) == 0 ? rc : -1;
}

static int store_teardown(void **state)
{
    struct store_fx *fx = *state;

    cmd__media_store_close(fx->st);
    assert_int_equal(chmod(fx->root, 0755), 0);
    assert_int_equal(rm_tree(fx->root), 0);
    free(fx);
    return 0;
}

static size_t count_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        n += strncmp(de->d_name, ".tmp-", 5) == 0;
    closedir(d);
    return n;
}

static void read_file(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "rb");
    size_t got;

    assert_non_null(f);
    got = fread(out, 1, n - 1, f);
    out[got] = '\0';
    fclose(f);
}

static void test_store_put_get_remove(void **state)
{
    struct store_fx *fx = *state;
    struct sp_errbuf eb = {{0}, {0}};
    char path[PATH_MAX], want[PATH_MAX], dir[PATH_MAX], got[64];
    char variant[128];
    struct stat sb, sb2;
    bool found = true;

    assert_int_equal(cmd__media_store_exists(fx->st, sha_a, &found, &eb), 0);
    assert_false(found);
    assert_int_equal(cmd__media_store_put(fx->st, sha_a, "hello", 5, &eb), 0);
    assert_int_equal(cmd__media_store_exists(fx->st, sha_a, &found, &eb), 0);
    assert_true(found);
    assert_int_equal(cmd__media_store_path(fx->st, sha_a, path, sizeof(path), &eb), 0);
    snprintf(want, sizeof(want), "%s/ab/12/%s", fx->root, sha_a);
    assert_string_equal(path, want); /* <root>/ab/cd/<key> */
    read_file(path, got, sizeof(got));
    assert_string_equal(got, "hello");
    snprintf(dir, sizeof(dir), "%s/ab/12", fx->root);
    assert_int_equal(count_tmp(dir), 0);

    /* a duplicate put keeps the one file: same inode, first bytes */
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(cmd__media_store_put(fx->st, sha_a, "hello", 5, &eb), 0);
    assert_int_equal(stat(path, &sb2), 0);
    assert_int_equal(sb.st_ino, sb2.st_ino);
    assert_int_equal(count_tmp(dir), 0);

    snprintf(variant, sizeof(variant), "%s.w640.webp", sha_a);
    assert_int_equal(cmd__media_store_put(fx->st, variant, "RIFF", 4, &eb), 0);
    assert_int_equal(cmd__media_store_path(fx->st, variant, path, sizeof(path), &eb), 0);
    snprintf(want, sizeof(want), "%s/ab/12/%s", fx->root, variant);
    assert_string_equal(path, want);
    assert_int_equal(access(path, R_OK), 0);

    assert_int_equal(cmd__media_store_remove(fx->st, sha_a, &eb), 0);
    assert_int_equal(cmd__media_store_exists(fx->st, sha_a, &found, &eb), 0);
    assert_false(found);
    assert_int_equal(cmd__media_store_remove(fx->st, sha_a, &eb), 0); /* idempotent */
    assert_int_equal(cmd__media_store_exists(fx->st, variant, &found, &eb), 0);
    assert_true(found); /* the variant is its own object */
    assert_int_equal(cmd__media_store_path(fx->st, sha_a, path, 10, &eb), SP_ETOOBIG);
}

static void test_store_bad_keys(void **state)
{
    static const char *const bad[] = {
        "",
        "abc",
        "../../../../etc/passwd",
        "AB12CD34000000000000000000000000000000000000000000000000000000FF",
        "ab12cd34000000000000000000000000000000000000000000000000000000ff/x",
        "ab12cd34000000000000000000000000000000000000000000000000000000ff..x",
        "ab12cd34000000000000000000000000000000000000000000000000000000ff.",
        "ab12cd34000000000000000000000000000000000000000000000000000000ffx",
        NULL};
    struct store_fx *fx = *state;
    struct sp_errbuf eb = {{0}, {0}};
    bool found;

    for (const char *const *k = bad; *k; k++) {
        assert_false(cmd__media_key_valid(*k));
        assert_int_equal(cmd__media_store_put(fx->st, *k, "x", 1, &eb), SP_EINVAL);
        assert_int_equal(cmd__media_store_exists(fx->st, *k, &found, &eb), SP_EINVAL);
        assert_int_equal(cmd__media_store_remove(fx->st, *k, &eb), SP_EINVAL);
    }
    assert_true(cmd__media_key_valid(sha_a));
}

static void test_store_sweep_tmp(void **state)
{
    struct store_fx *fx = *state;
    struct sp_errbuf eb = {{0}, {0}};
    char dir[PATH_MAX], tmp[PATH_MAX];
    size_t n = 99;
    bool found;
    int fd;

    assert_int_equal(cmd__media_store_put(fx->st, sha_a, "hello", 5, &eb), 0);
    snprintf(dir, sizeof(dir), "%s/ab/12", fx->root);
    snprintf(tmp, sizeof(tmp), "%s/ab/12/.tmp-%s-abcdef", fx->root, sha_a); /* a crash left it */
    fd = open(tmp, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "hal", 3), 3);
    close(fd);
    assert_int_equal(count_tmp(dir), 1);
    assert_int_equal(cmd__media_store_sweep_tmp(fx->st, 3600, &n, &eb), 0);
    assert_int_equal(n, 0); /* too young: could be a put in progress */
    assert_int_equal(count_tmp(dir), 1);
    assert_int_equal(cmd__media_store_sweep_tmp(fx->st, 0, &n, &eb), 0);
    assert_int_equal(n, 1);
    assert_int_equal(count_tmp(dir), 0);
    assert_int_equal(cmd__media_store_exists(fx->st, sha_a, &found, &eb), 0);
    assert_true(found); /* objects are not temporary files */
}

static void test_store_read_only(void **state)
{
    struct store_fx *fx = *state;
    struct sp_errbuf eb = {{0}, {0}};
    bool root = geteuid() == 0;
    bool found = true;
    int rc;

    assert_int_equal(chmod(fx->root, 0555), 0);
    if (root) /* root ignores mode bits: write as nobody */
        assert_int_equal(seteuid(65534), 0);
    rc = cmd__media_store_put(fx->st, sha_a, "hello", 5, &eb);
    if (root)
        assert_int_equal(seteuid(0), 0);
    assert_int_equal(rc, -EACCES);
    assert_non_null(strstr(eb.msg, "permission denied"));
    assert_non_null(strstr(eb.msg, fx->root));
    assert_int_equal(cmd__media_store_exists(fx->st, sha_a, &found, &eb), 0);
    assert_false(found);
    assert_int_equal(chmod(fx->root, 0755), 0);
}

static void test_store_open_errors(void **state)
{
    struct cmd__media_store *st = (void *)1;
    struct sp_errbuf eb = {{0}, {0}};

    (void)state;
    assert_int_equal(cmd__media_store_fs_open("/nonexistent/stockpot", &st, &eb), -ENOENT);
    assert_null(st);
    assert_int_equal(cmd__media_store_fs_open("/etc/hostname", &st, &eb), -ENOTDIR);
    cmd__media_store_close(NULL);
}

static int vips_setup(void **state)
{
    (void)state;
    return VIPS_INIT("test_media");
}

static int vips_teardown(void **state)
{
    (void)state;
    vips_shutdown();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_format),
        cmocka_unit_test(test_png_typed_by_content),
        cmocka_unit_test(test_exif_gps_stripped),
        cmocka_unit_test(test_orientation_applied),
        cmocka_unit_test(test_icc_converted_to_srgb),
        cmocka_unit_test(test_pixel_bomb_refused),
        cmocka_unit_test(test_truncated_jpeg_refused),
        cmocka_unit_test(test_not_images_refused),
        cmocka_unit_test(test_polyglots),
        cmocka_unit_test_setup_teardown(test_store_put_get_remove, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_bad_keys, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_sweep_tmp, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_read_only, store_setup, store_teardown),
        cmocka_unit_test(test_store_open_errors),
    };
    return cmocka_run_group_tests(tests, vips_setup, vips_teardown);
}
