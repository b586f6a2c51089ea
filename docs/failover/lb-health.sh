#!/bin/sh
# Keeps the nftables balancer (nftables-lb.nft) pointing at ready wirefleetd nodes: hash
# bucket i goes to node i while it answers /readyz, else to the first node that does.
# Checks every half second; a change is one nft transaction (the map flushed and refilled).
#   usage: lb-health.sh API_PORT NODE1 NODE2
set -u
port=$1
shift
last=""
while :; do
	ready=""
	for n in "$@"; do
		if curl -sf -m 1 -o /dev/null "http://$n:$port/readyz"; then
			ready="$ready $n"
		fi
	done
	first=""
	for n in $ready; do
		first=$n
		break
	done
	want=""
	i=0
	for n in "$@"; do
		case " $ready " in
		*" $n "*) t=$n ;;
		*) t=$first ;;
		esac
		if [ -n "$t" ]; then
			want="$want $i : $t,"
		fi
		i=$((i + 1))
	done
	if [ -n "$first" ] && [ "$want" != "$last" ]; then
		if printf 'flush map ip wirefleet_lb backends\nadd element ip wirefleet_lb backends {%s }\n' "${want%,}" | nft -f -; then
			echo "lb-health: buckets ->${want%,}"
			last=$want
		fi
	fi
	sleep 0.5
done
