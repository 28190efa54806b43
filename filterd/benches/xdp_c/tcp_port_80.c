/* tcp port 80 */
#include "common.h"

SEC("xdp")
int tcp_port_80(struct xdp_md *ctx)
{
	const __u8 *p = (const __u8 *)(long)ctx->data;
	const __u8 *end = (const __u8 *)(long)ctx->data_end;

	NEED(p, 14, end);
	__u16 type = LOAD16(p + 12);
	if (type == htons(ETH_P_IPV6)) {
		NEED(p, 21, end);
		if (p[20] != IPPROTO_TCP)
			return XDP_DROP;
		NEED(p, 56, end);
		if (LOAD16(p + 54) == htons(80))
			return XDP_PASS;
		NEED(p, 58, end);
		return LOAD16(p + 56) == htons(80) ? XDP_PASS : XDP_DROP;
	}
	if (type != htons(ETH_P_IP))
		return XDP_DROP;
	NEED(p, 24, end);
	if (p[23] != IPPROTO_TCP || (LOAD16(p + 20) & htons(0x1fff)))
		return XDP_DROP;
	const __u8 *l4 = p + 14 + (p[14] & 0xf) * 4;
	NEED(l4, 2, end);
	if (LOAD16(l4) == htons(80))
		return XDP_PASS;
	NEED(l4, 4, end);
	return LOAD16(l4 + 2) == htons(80) ? XDP_PASS : XDP_DROP;
}
