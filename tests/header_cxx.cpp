// include/amxq.h compiles alone as C++ and links with C linkage.
#include "amxq.h"

int main()
{
    amxq_matmul_params p{};
    p.isa = AMXQ_ISA_SCALAR;
    (void)p;
    return (amxq_version_number() == AMXQ_VERSION_NUMBER && amxq_status_str(AMXQ_OK)) ? 0 : 1;
}
