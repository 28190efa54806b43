/* host 10.0.0.1 (IPv4 source or destination, or ARP/RARP sender or
 * target, as libpcap defines it) */
#include "common.h"

#define HOST htonl(0x0a000001)

SEC("xdp")
int host_10_0_0_1(struct xdp_md *ctx)
{
	const __u8 *p = (const __u8 *)(long)ctx->data;
	const __u8 *end = (const __u8 *)(long)ctx->data_end;

	NEED(p, 14, end);
	__u16 type = LOAD16(p + 12);
	if (type == htons(ETH_P_IP)) {
		NEED(p, 30, end);
		if (LOAD32(p + 26) == HOST)
			return XDP_PASS;
		NEED(p, 34, end);
		return LOAD32(p + 30) == HOST ? XDP_PASS : XDP_DROP;
	}
	if (type == htons(ETH_P_ARP) || type == htons(ETH_P_RARP)) {
		NEED(p, 32, end);
		if (LOAD32(p + 28) == HOST)
			return XDP_PASS;
		NEED(p, 42, end);
		return LOAD32(p + 38) == HOST ? XDP_PASS : XDP_DROP;
	}
	return XDP_DROP;
}
