/* Shared by the hand-written XDP programs that the kernel_xdp benchmark
 * races against our translations. Self-contained: `clang -target bpf`
 * finds no <asm/types.h> without the host's multiarch include path, and
 * there are no libbpf headers on this machine, so the few kernel ABI
 * names used are spelled out here (values from <linux/bpf.h>, <linux/in.h>). */
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

enum xdp_action { XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT };

#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

#define SEC(name) __attribute__((section(name), used))
/* Network-order constants, folded at compile time. */
#define htons(x) ((__u16)__builtin_bswap16(x))
#define htonl(x) ((__u32)__builtin_bswap32(x))

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86dd
#define ETH_P_ARP 0x0806
#define ETH_P_RARP 0x8035

/* Loads in network order, compared against htons()/htonl() constants. */
#define LOAD16(p) (*(const __u16 *)(p))
#define LOAD32(p) (*(const __u32 *)(p))

/* Every program checks the bytes of each load just before it, in the
 * order libpcap's program loads them: a short frame then gets the same
 * verdict as the classic filter (a load past the end rejects). */
#define NEED(p, n, end)                                                        \
	do {                                                                   \
		if ((const __u8 *)(p) + (n) > (end))                           \
			return XDP_DROP;                                       \
	} while (0)

char _license[] SEC("license") = "GPL";
