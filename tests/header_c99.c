/* include/amxq.h compiles alone as strict C99 (-std=c99 -pedantic-errors, see meson.build). */
#include "amxq.h"

int main(void)
{
    amxq_matmul_params p = {AMXQ_ISA_AUTO, 0, 0, 0};
    (void)p;
    return amxq_version_number() == AMXQ_VERSION_NUMBER ? 0 : 1;
}
