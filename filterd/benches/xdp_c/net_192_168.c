/* net 192.168.0.0/16 (IPv4 source or destination, or ARP/RARP sender or
 * target) */
#include "common.h"

#define IN_NET(a) (((a) & htonl(0xffff0000)) == htonl(0xc0a80000))

SEC("xdp")
int net_192_168(struct xdp_md *ctx)
{
	const __u8 *p = (const __u8 *)(long)ctx->data;
	const __u8 *end = (const __u8 *)(long)ctx->data_end;

	NEED(p, 14, end);
	__u16 type = LOAD16(p + 12);
	if (type == htons(ETH_P_IP)) {
		NEED(p, 30, end);
		if (IN_NET(LOAD32(p + 26)))
			return XDP_PASS;
		NEED(p, 34, end);
		return IN_NET(LOAD32(p + 30)) ? XDP_PASS : XDP_DROP;
	}
	if (type == htons(ETH_P_ARP) || type == htons(ETH_P_RARP)) {
		NEED(p, 32, end);
		if (IN_NET(LOAD32(p + 28)))
			return XDP_PASS;
		NEED(p, 42, end);
		return IN_NET(LOAD32(p + 38)) ? XDP_PASS : XDP_DROP;
	}
	return XDP_DROP;
}
