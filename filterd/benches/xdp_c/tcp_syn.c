/* tcp[tcpflags] & tcp-syn != 0 (IPv4 only, first fragments only, as in
 * libpcap) */
#include "common.h"

SEC("xdp")
int tcp_syn(struct xdp_md *ctx)
{
	const __u8 *p = (const __u8 *)(long)ctx->data;
	const __u8 *end = (const __u8 *)(long)ctx->data_end;

	NEED(p, 14, end);
	if (LOAD16(p + 12) != htons(ETH_P_IP))
		return XDP_DROP;
	NEED(p, 24, end);
	if (p[23] != IPPROTO_TCP || (LOAD16(p + 20) & htons(0x1fff)))
		return XDP_DROP;
	const __u8 *l4 = p + 14 + (p[14] & 0xf) * 4;
	NEED(l4, 14, end);
	return (l4[13] & 0x02) ? XDP_PASS : XDP_DROP;
}
