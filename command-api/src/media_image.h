/*
 * Uploaded images: decide the type from the bytes, then decode, bound, rotate, strip and
 * re-encode them with libvips, and make the WebP derivatives the query side serves.
 */
#ifndef CMD_MEDIA_IMAGE_H
#define CMD_MEDIA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "sp/err.h"

/** Most derivative sizes one call makes (the bound of cmd__media_limits.sizes_px). */
#define CMD_MEDIA_MAX_SIZES 8

/** Image types accepted for upload; CMD_MEDIA_UNKNOWN is every other byte string. */
enum cmd__media_type {
    CMD_MEDIA_UNKNOWN = 0,
    CMD_MEDIA_JPEG, /* image/jpeg */
    CMD_MEDIA_PNG,  /* image/png */
    CMD_MEDIA_WEBP, /* image/webp */
    CMD_MEDIA_GIF,  /* image/gif; only the first frame is kept */
    CMD_MEDIA_HEIC, /* image/heic (any non-AVIF HEIF brand), if libvips has heifload */
    CMD_MEDIA_AVIF, /* image/avif, if libvips has heifload with an AV1 decoder */
};

/** Bounds and outputs of cmd__media_process; cmd__media_limits_init sets the defaults. */
struct cmd__media_limits {
    uint64_t max_pixels;                    /* width x height cap, checked on the header */
    unsigned sizes_px[CMD_MEDIA_MAX_SIZES]; /* long side of each WebP derivative, > 0 */
    size_t n_sizes;                         /* entries used in sizes_px, <= CMD_MEDIA_MAX_SIZES */
    int original_quality;                   /* 1..100, lossy re-encode of the original */
    int derivative_quality;                 /* 1..100, WebP derivatives */
};

/** One encoded image. */
struct cmd__media_blob {
    unsigned char *data; /* owned by the cmd__media_result it sits in */
    size_t size_bytes;
    unsigned width_px;
    unsigned height_px;
};

/** What cmd__media_process makes; zero it (or let process do so), free with _release. */
struct cmd__media_result {
    enum cmd__media_type type;         /* decided by the bytes; UNKNOWN on a 415 refusal */
    const char *content_type;          /* of the upload, e.g. "image/png"; static string */
    const char *original_content_type; /* of original.data; differs only for a PNG fallback */
    unsigned width_px;                 /* after EXIF rotation */
    unsigned height_px;                /* after EXIF rotation */
    char sha256_hex[65];               /* SHA-256 of the uploaded bytes, lower-case hex */
    struct cmd__media_blob original;   /* sanitized original, re-encoded in its own format */
    struct cmd__media_blob derivatives[CMD_MEDIA_MAX_SIZES]; /* image/webp, per sizes_px */
    unsigned derivative_size_px[CMD_MEDIA_MAX_SIZES];        /* the sizes_px each came from */
    size_t n_derivatives;                                    /* == lim->n_sizes on success */
};

/**
 * Set @p lim to the defaults: 40,000,000 pixels (e.g. 8000 x 5000), derivatives of 160,
 * 640 and 1280 px on the long side, quality 90 for the original and 80 for WebP.
 */
void cmd__media_limits_init(struct cmd__media_limits *lim);

/**
 * Name the accepted type of @p len bytes at @p buf by their magic numbers alone; a file
 * name or client Content-Type is never consulted. Sources: JPEG, ITU-T T.81 B.1.1.2 (SOI
 * FF D8 then a marker FF); PNG, ISO/IEC 15948 5.2 (the 8-byte signature 89 50 4E 47 0D 0A
 * 1A 0A); WebP, RFC 9649 §2 ("RIFF", a 4-byte size, "WEBP"); GIF, GIF89a §17 ("GIF87a" or
 * "GIF89a"); HEIC and AVIF, ISO/IEC 14496-12 4.3 (a leading `ftyp` box) with the brands of
 * ISO/IEC 23008-12 (heic, heix, heim, heis, hevc, hevx, mif1, msf1) and AV1-in-HEIF 1.0
 * (avif, avis). HEIC and AVIF count only when libvips picks heifload for the bytes, so a
 * build without libheif refuses them as unknown.
 *
 * @param buf, len  the bytes; borrowed; @p buf may be NULL when @p len is 0
 * @param[out] type the type, or CMD_MEDIA_UNKNOWN on refusal
 * @return 0; SP_EINVAL if the bytes are empty or of no accepted type (answer 415);
 *         SP_EUNAVAIL if libvips failed to start (answer 503).
 * @locality any thread (starts libvips once, see cmd__media_process)
 */
SP_MUST_CHECK int cmd__media_sniff(const void *buf, size_t len, enum cmd__media_type *type);

/**
 * Sanitize one uploaded image and make its derivatives: sniff the type (as
 * cmd__media_sniff), require libvips' loader to agree, read the header and refuse an image
 * over @p lim->max_pixels before any pixel is decoded, decode the whole first frame with
 * fail-on-error (a truncated or corrupt file is refused), rotate by the EXIF orientation,
 * convert to 8-bit sRGB (through the embedded ICC profile if one is there), drop every
 * metadata item (EXIF, XMP, IPTC, ICC, comments), then encode:
 *  - the original in its own format (JPEG, PNG, WebP, GIF, HEIC or AVIF), so nothing of
 *    the uploaded bytes but the pixels survives; GIF falls back to PNG (and says so in
 *    original_content_type) when this libvips has no gifsave;
 *  - one WebP per @p lim->sizes_px whose long side is that size, never upscaled: an image
 *    smaller than a size gets that derivative at its own size, so there is always one per
 *    size.
 * The decoded frame is held in memory once (width x height x bands bytes, bounded by
 * max_pixels x 4), so the caller bounds concurrent calls.
 *
 * @param buf, len  the uploaded bytes; borrowed, not modified
 * @param lim       bounds and sizes; borrowed
 * @param[out] out  zeroed first; on success owns every blob (cmd__media_result_release);
 *                  on failure holds no memory but keeps type (UNKNOWN for 415) and sha256
 * @param eb        optional human detail; field "media_type" (415), "content" (400) or
 *                  "pixels" (SP_ETOOBIG)
 * @return 0; SP_EINVAL with out->type == CMD_MEDIA_UNKNOWN if the bytes are no accepted
 *         type (answer 415); SP_EINVAL with out->type set if libvips' loader disagrees
 *         with the bytes' type (a polyglot) or the image does not decode cleanly, e.g. it
 *         is truncated (answer 400); SP_ETOOBIG if width x height exceeds max_pixels
 *         (answer 413); SP_EUNAVAIL if libvips failed to start or an encoder failed on a
 *         decoded image (answer 500/503: not the client's fault).
 * @locality any thread; libvips runs with concurrency 1 and no operation cache
 */
SP_MUST_CHECK int cmd__media_process(const void *buf,
                                     size_t len,
                                     const struct cmd__media_limits *lim,
                                     struct cmd__media_result *out,
                                     struct sp_errbuf *eb);

/** Free every blob of @p res and zero it; a zeroed or released result is a no-op. */
void cmd__media_result_release(struct cmd__media_result *res);

/** MIME type of @p type ("image/png"), or "application/octet-stream" for UNKNOWN. */
const char *cmd__media_type_name(enum cmd__media_type type);

#endif
