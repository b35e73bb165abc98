/* Upload sanitizing with libvips: sniff, bound, decode, rotate, strip, re-encode, resize. */
#include "media_image.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/evp.h>
#include <vips/vips.h>
#include <webp/mux.h>

#include "sp/banned.h"

static pthread_once_t vips_once = PTHREAD_ONCE_INIT;
static int vips_status = SP_EUNAVAIL; /* written once under vips_once */

/*
 * Start libvips for a long-lived server: no operation cache (every upload is new bytes,
 * and the cache would pin decoded images), one worker per pipeline, and loaders marked
 * untrusted (ImageMagick, SVG, PDF, JPEG-XL, ...) blocked, so no input reaches them.
 */
static void vips_start(void)
{
    if (VIPS_INIT("stockpot") != 0) {
        vips_error_clear();
        return;
    }
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    vips_cache_set_max_files(0);
    vips_concurrency_set(1);
    vips_block_untrusted_set(TRUE);
    vips_status = 0;
}

static int vips_ready(void)
{
    int rc = pthread_once(&vips_once, vips_start);

    return rc != 0 ? -rc : vips_status;
}

void cmd__media_limits_init(struct cmd__media_limits *lim)
{
    memset(lim, 0, sizeof(*lim));
    lim->max_pixels = 40000000;
    lim->sizes_px[0] = 160;
    lim->sizes_px[1] = 640;
    lim->sizes_px[2] = 1280;
    lim->n_sizes = 3;
    lim->original_quality = 90;
    lim->derivative_quality = 80;
}

const char *cmd__media_type_name(enum cmd__media_type type)
{
    switch (type) {
    case CMD_MEDIA_JPEG:
        return "image/jpeg";
    case CMD_MEDIA_PNG:
        return "image/png";
    case CMD_MEDIA_WEBP:
        return "image/webp";
    case CMD_MEDIA_GIF:
        return "image/gif";
    case CMD_MEDIA_HEIC:
        return "image/heic";
    case CMD_MEDIA_AVIF:
        return "image/avif";
    case CMD_MEDIA_UNKNOWN:
        break;
    }
    return "application/octet-stream";
}

/* The libvips loader (its GType name, as vips_foreign_find_load_buffer names it) of a type. */
static const char *type_loader(enum cmd__media_type type)
{
    switch (type) {
    case CMD_MEDIA_JPEG:
        return "VipsForeignLoadJpegBuffer";
    case CMD_MEDIA_PNG:
        return "VipsForeignLoadPngBuffer";
    case CMD_MEDIA_WEBP:
        return "VipsForeignLoadWebpBuffer";
    case CMD_MEDIA_GIF:
        return "VipsForeignLoadNsgifBuffer";
    case CMD_MEDIA_HEIC:
    case CMD_MEDIA_AVIF:
        return "VipsForeignLoadHeifBuffer";
    case CMD_MEDIA_UNKNOWN:
        break;
    }
    return NULL;
}

static bool brand_in(const unsigned char *b, const char *const *brands)
{
    for (; *brands; brands++)
        if (memcmp(b, *brands, 4) == 0)
            return true;
    return false;
}

/* ISO BMFF: a leading box of type "ftyp": size(4) "ftyp" major(4) minor(4) compatible(4n). */
static enum cmd__media_type sniff_ftyp(const unsigned char *b, size_t len)
{
    static const char *const avif[] = {"avif", "avis", NULL};
    static const char *const heic[] = {"heic", "heix", "heim", "heis", "hevc",
                                       "hevx", "mif1", "msf1", NULL};
    size_t box, off;
    bool is_heic = false;

    if (len < 16 || memcmp(b + 4, "ftyp", 4) != 0)
        return CMD_MEDIA_UNKNOWN;
    box = (size_t)b[0] << 24 | (size_t)b[1] << 16 | (size_t)b[2] << 8 | b[3];
    if (box < 16 || box > len || box % 4 != 0)
        return CMD_MEDIA_UNKNOWN;
    for (off = 8; off + 4 <= box; off += 4) {
        if (off == 12)
            continue; /* minor_version, not a brand */
        if (brand_in(b + off, avif))
            return CMD_MEDIA_AVIF;
        is_heic = is_heic || brand_in(b + off, heic);
    }
    return is_heic ? CMD_MEDIA_HEIC : CMD_MEDIA_UNKNOWN;
}

static enum cmd__media_type sniff_magic(const unsigned char *b, size_t len)
{
    if (len >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        return CMD_MEDIA_JPEG;
    if (len >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0)
        return CMD_MEDIA_PNG;
    if (len >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
        return CMD_MEDIA_WEBP;
    if (len >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0))
        return CMD_MEDIA_GIF;
    return sniff_ftyp(b, len);
}

int cmd__media_sniff(const void *buf, size_t len, enum cmd__media_type *type)
{
    enum cmd__media_type t;
    const char *loader;
    int rc;

    *type = CMD_MEDIA_UNKNOWN;
    if (len == 0 || buf == NULL)
        return SP_EINVAL;
    t = sniff_magic(buf, len);
    if (t == CMD_MEDIA_UNKNOWN)
        return SP_EINVAL;
    if (t == CMD_MEDIA_HEIC || t == CMD_MEDIA_AVIF) {
        if ((rc = vips_ready()) != 0)
            return rc;
        loader = vips_foreign_find_load_buffer(buf, len);
        vips_error_clear();
        if (loader == NULL || strcmp(loader, "VipsForeignLoadHeifBuffer") != 0)
            return SP_EINVAL;
    }
    *type = t;
    return 0;
}

static void sha256_hex(const void *buf, size_t len, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    int ok = EVP_Digest(buf, len, md, &md_len, EVP_sha256(), NULL);

    SP_ASSERT(ok == 1 && md_len == 32); /* fails only without memory */
    for (size_t i = 0; i < md_len; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 0xF];
    }
    hex[64] = '\0';
}

/*
 * Copy the first line of libvips' error text into @p eb and clear it. libvips keeps one
 * error buffer per process, so under concurrent calls the text may come from another
 * call; the return code is always this call's own.
 */
static int vips_fail(struct sp_errbuf *eb, int err, const char *field, const char *what)
{
    const char *detail = vips_error_buffer();
    size_t n = strcspn(detail, "\n");

    sp_err_set(eb, err, field, "%s: %.*s", what, (int)n, detail);
    vips_error_clear();
    return err;
}

/* Open lazily: only the header is read; pixels are decoded on first use. */
static int open_header(
    const void *buf, size_t len, enum cmd__media_type type, VipsImage **img, struct sp_errbuf *eb)
{
    const char *want = type_loader(type);
    const char *loader = vips_foreign_find_load_buffer(buf, len);

    if (loader == NULL || strcmp(loader, want) != 0) {
        vips_error_clear();
        return sp_err_set(eb, SP_EINVAL, "content",
                          "the bytes look like %s but libvips would read them with \"%s\"",
                          cmd__media_type_name(type), loader ? loader : "no loader");
    }
    *img = vips_image_new_from_buffer(buf, len, "", "fail_on", VIPS_FAIL_ON_ERROR, NULL);
    if (*img == NULL)
        return vips_fail(eb, SP_EINVAL, "content", "could not read the image header");
    return 0;
}

/* Rotate upright, convert to 8-bit sRGB via the embedded profile, and drop all metadata. */
static int clean_pixels(VipsImage *in, VipsImage **out, struct sp_errbuf *eb)
{
    VipsImage *rot = NULL, *srgb = NULL, *copy = NULL;
    gchar **fields;
    int rc = SP_EUNAVAIL;

    if (vips_autorot(in, &rot, NULL) != 0)
        return vips_fail(eb, SP_EUNAVAIL, NULL, "could not rotate the image");
    if (vips_image_get_typeof(rot, VIPS_META_ICC_NAME) &&
        vips_icc_transform(rot, &srgb, "srgb", "embedded", TRUE, "depth", 8, NULL) != 0) {
        vips_error_clear(); /* a broken profile: fall back to the plain conversion */
        srgb = NULL;
    }
    if (srgb == NULL && vips_colourspace(rot, &srgb, VIPS_INTERPRETATION_sRGB, NULL) != 0) {
        rc = vips_fail(eb, SP_EINVAL, "content", "could not convert the image to sRGB");
        goto out_unref_rot;
    }
    if (vips_cast_uchar(srgb, &copy, NULL) != 0) {
        rc = vips_fail(eb, SP_EUNAVAIL, NULL, "could not convert the image to 8 bits");
        goto out_unref_srgb;
    }
    fields = vips_image_get_fields(copy);
    for (gchar **f = fields; *f; f++)
        vips_image_remove(copy, *f); /* built-in header fields are not removable: ignored */
    g_strfreev(fields);
    *out = copy;
    rc = 0;
out_unref_srgb:
    g_object_unref(srgb);
out_unref_rot:
    g_object_unref(rot);
    return rc;
}

/*
 * Drop the EXIF, XMP and ICC chunks of a WebP with libwebpmux, in place (*data is a
 * g_malloc buffer). libvips 8.14.1, Debian 12's, ignores strip in webpsave and writes an
 * EXIF chunk rebuilt from the header (libvips/libvips#3340); this runs on every WebP we
 * write so that no libvips version can leak one.
 */
static int webp_strip(void **data, size_t *n)
{
    static const char *const chunks[] = {"EXIF", "XMP ", "ICCP"};
    WebPData in = {.bytes = *data, .size = *n}, out;
    WebPMux *mux = WebPMuxCreate(&in, 0);
    int rc = -1;

    if (mux == NULL) {
        vips_error("webp_strip", "libwebpmux could not parse the webp libvips wrote");
        return -1;
    }
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        WebPMuxError e = WebPMuxDeleteChunk(mux, chunks[i]);

        if (e != WEBP_MUX_OK && e != WEBP_MUX_NOT_FOUND)
            goto out_delete_mux;
    }
    WebPDataInit(&out);
    if (WebPMuxAssemble(mux, &out) == WEBP_MUX_OK) {
        g_free(*data);
        *data = g_memdup2(out.bytes, out.size);
        *n = out.size;
        rc = 0;
    }
    WebPDataClear(&out);
out_delete_mux:
    WebPMuxDelete(mux);
    if (rc != 0)
        vips_error("webp_strip", "libwebpmux could not remove metadata");
    return rc;
}

static int save_webp(VipsImage *img, int q, void **data, size_t *n)
{
    if (vips_webpsave_buffer(img, data, n, "Q", q, "strip", TRUE, NULL) != 0)
        return -1;
    if (webp_strip(data, n) != 0) {
        g_free(*data);
        *data = NULL;
        return -1;
    }
    return 0;
}

/* Encode @p img as @p type with every saver's strip on. Sets *ct to what was written. */
static int encode_original(
    VipsImage *img, enum cmd__media_type type, int q, struct cmd__media_blob *blob, const char **ct)
{
    void *data = NULL;
    size_t n = 0;
    int rc = -1;

    *ct = cmd__media_type_name(type);
    switch (type) {
    case CMD_MEDIA_JPEG:
        rc = vips_jpegsave_buffer(img, &data, &n, "Q", q, "strip", TRUE, NULL);
        break;
    case CMD_MEDIA_WEBP:
        rc = save_webp(img, q, &data, &n);
        break;
    case CMD_MEDIA_GIF:
        if (vips_type_find("VipsOperation", "gifsave_buffer") != 0) {
            rc = vips_gifsave_buffer(img, &data, &n, "strip", TRUE, NULL);
            break;
        }
        /* no GIF encoder in this libvips: keep the first frame as PNG */
        *ct = cmd__media_type_name(CMD_MEDIA_PNG);
        /* fallthrough */
    case CMD_MEDIA_PNG:
        rc = vips_pngsave_buffer(img, &data, &n, "strip", TRUE, NULL);
        break;
    case CMD_MEDIA_HEIC:
    case CMD_MEDIA_AVIF:
        rc = vips_heifsave_buffer(img, &data, &n, "Q", q, "strip", TRUE, "compression",
                                  type == CMD_MEDIA_AVIF ? VIPS_FOREIGN_HEIF_COMPRESSION_AV1
                                                         : VIPS_FOREIGN_HEIF_COMPRESSION_HEVC,
                                  NULL);
        break;
    case CMD_MEDIA_UNKNOWN:
        break;
    }
    if (rc != 0)
        return rc;
    blob->data = data;
    blob->size_bytes = n;
    blob->width_px = (unsigned)vips_image_get_width(img);
    blob->height_px = (unsigned)vips_image_get_height(img);
    return 0;
}

/* One WebP whose long side is @p size_px, or the image's own size if that is smaller. */
static int encode_derivative(VipsImage *img, unsigned size_px, int q, struct cmd__media_blob *blob)
{
    VipsImage *thumb = NULL;
    void *data = NULL;
    size_t n = 0;
    int rc;

    if (vips_thumbnail_image(img, &thumb, (int)size_px, "height", (int)size_px, "size",
                             VIPS_SIZE_DOWN, "no_rotate", TRUE, NULL) != 0)
        return -1;
    rc = save_webp(thumb, q, &data, &n);
    if (rc == 0) {
        blob->data = data;
        blob->size_bytes = n;
        blob->width_px = (unsigned)vips_image_get_width(thumb);
        blob->height_px = (unsigned)vips_image_get_height(thumb);
    }
    g_object_unref(thumb);
    return rc;
}

/* Decode, clean and encode the original and every derivative of an opened image. */
static int make_outputs(VipsImage *img,
                        const struct cmd__media_limits *lim,
                        struct cmd__media_result *out,
                        struct sp_errbuf *eb)
{
    VipsImage *mem, *clean = NULL;
    int rc;

    mem = vips_image_copy_memory(img); /* decodes every pixel; fail_on refuses damage */
    if (mem == NULL)
        return vips_fail(eb, SP_EINVAL, "content", "the image does not decode");
    if ((rc = clean_pixels(mem, &clean, eb)) != 0)
        goto out_unref_mem;
    out->width_px = (unsigned)vips_image_get_width(clean);
    out->height_px = (unsigned)vips_image_get_height(clean);
    rc = encode_original(clean, out->type, lim->original_quality, &out->original,
                         &out->original_content_type);
    if (rc != 0) {
        rc = vips_fail(eb, SP_EUNAVAIL, NULL, "could not encode the original");
        goto out_unref_clean;
    }
    for (size_t i = 0; i < lim->n_sizes; i++) {
        if (encode_derivative(clean, lim->sizes_px[i], lim->derivative_quality,
                              &out->derivatives[i]) != 0) {
            rc = vips_fail(eb, SP_EUNAVAIL, NULL, "could not make a derivative");
            goto out_unref_clean;
        }
        out->derivative_size_px[i] = lim->sizes_px[i];
        out->n_derivatives = i + 1;
    }
out_unref_clean:
    g_object_unref(clean);
out_unref_mem:
    g_object_unref(mem);
    return rc;
}

int cmd__media_process(const void *buf,
                       size_t len,
                       const struct cmd__media_limits *lim,
                       struct cmd__media_result *out,
                       struct sp_errbuf *eb)
{
    enum cmd__media_type type;
    VipsImage *img = NULL;
    uint64_t pixels;
    int rc;

    SP_ASSERT(lim->n_sizes <= CMD_MEDIA_MAX_SIZES);
    memset(out, 0, sizeof(*out));
    if ((rc = vips_ready()) != 0)
        return sp_err_set(eb, rc, NULL, "libvips did not start");
    if (len > 0 && buf != NULL)
        sha256_hex(buf, len, out->sha256_hex);
    if ((rc = cmd__media_sniff(buf, len, &type)) != 0)
        return sp_err_set(eb, rc, "media_type",
                          len == 0 ? "the upload is empty"
                                   : "the bytes are no JPEG, PNG, WebP, GIF, HEIC or AVIF image");
    out->type = type;
    out->content_type = cmd__media_type_name(type);
    if ((rc = open_header(buf, len, type, &img, eb)) != 0)
        return rc;
    pixels = (uint64_t)vips_image_get_width(img) * (uint64_t)vips_image_get_height(img);
    if (pixels > lim->max_pixels) {
        rc = sp_err_set(eb, SP_ETOOBIG, "pixels", "the image has %llu pixels, more than %llu",
                        (unsigned long long)pixels, (unsigned long long)lim->max_pixels);
        goto out_unref_img;
    }
    rc = make_outputs(img, lim, out, eb);
out_unref_img:
    g_object_unref(img);
    if (rc != 0) {
        type = out->type;
        cmd__media_result_release(out);
        out->type = type;
        out->content_type = cmd__media_type_name(type);
        if (len > 0)
            sha256_hex(buf, len, out->sha256_hex);
    }
    return rc;
}

void cmd__media_result_release(struct cmd__media_result *res)
{
    g_free(res->original.data);
    for (size_t i = 0; i < res->n_derivatives; i++)
        g_free(res->derivatives[i].data);
    memset(res, 0, sizeof(*res));
}
