/*
 * Packing internals shared by src/pack and the entry points.
 */
#ifndef AMXQ_PACK_PACK_H
#define AMXQ_PACK_PACK_H

#include "internal.h"

/* Write the header for `lo` at dst (AMXQ_HEADER_BYTES bytes). */
void amxq_header_write(void *dst, const amxq_layout *lo);

/* Pack rows into panels [p0, p1) of a buffer whose header is (or will be) `lo`; ggml_rows as in
 * amxq_pack(). Writes every byte of those panels, padding included. */
void amxq_pack_panels(const amxq_layout *lo, const uint8_t *ggml_rows, uint8_t *packed, int64_t p0,
                      int64_t p1);

/* Restore the ggml rows of panels [p0, p1). */
void amxq_unpack_panels(const amxq_layout *lo, const uint8_t *packed, uint8_t *ggml_rows,
                        int64_t p0, int64_t p1);

/* Offsets of the fp16 scale fields in one ggml block of `type` (d; then m or dmin, if any);
 * returns their count, 1 or 2. For tests and the self-test, which write finite scales into
 * random blocks. */
size_t amxq_ggml_fp16_fields(amxq_type type, size_t off[2]);

#endif /* AMXQ_PACK_PACK_H */
