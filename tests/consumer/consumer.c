/* A program outside the tree, built with `pkg-config --cflags --libs amxq` against an installed
 * amxq (tools/test-all.sh): packs a Q8_0 weight and checks one product by hand. */
#include <amxq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    /* One row, one block: d = 1.0 (0x3c00), weights 0..31 - 16. */
    unsigned char row[34];
    row[0] = 0x00;
    row[1] = 0x3c;
    for (int i = 0; i < 32; i++)
        row[2 + i] = (unsigned char)(signed char)(i - 16);
    size_t bytes = amxq_packed_size(AMXQ_TYPE_Q8_0, 1, 32);
    void *w = aligned_alloc(AMXQ_ALIGNMENT, bytes);
    float x[32], c = 0.0f;
    for (int i = 0; i < 32; i++)
        x[i] = 1.0f;
    amxq_status st = amxq_pack(AMXQ_TYPE_Q8_0, row, 1, 32, w, bytes);
    if (st == AMXQ_OK)
        st = amxq_matmul(w, x, 1, 32, &c, 1);
    free(w);
    /* X quantizes to d = 1/127, q = 127: C = sum(i - 16) = -16 exactly up to the scale's rounding.
     */
    printf("amxq %s: status %s, c = %g\n", amxq_version_string(), amxq_status_str(st), c);
    return st == AMXQ_OK && c > -16.01f && c < -15.99f ? 0 : 1;
}
