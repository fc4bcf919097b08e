#!/bin/bash
# What a rule-hash comment costs iptables-save (issue 13): N rules in one
# chain, each with the comment reyes gives it (a security group and rule),
# with and without the "reyes:<hash>" comment, loaded in a fresh network
# namespace per run; prints the faster of two saves. Needs root. The
# machine's own firewall and xtables lock are not touched.
# usage: bench/rulehash/save-cost.sh N
set -euo pipefail
N=$1
export XTABLES_LOCKFILE=$(mktemp)
gen() { # $1 = with comment?
  echo '*filter'; echo ':REYES-X - [0:0]'; echo ':REYES-X2 - [0:0]'
  python3 -c "
import sys
n=$N; c=$1
for i in range(n):
    a=10+(i>>16)&255; b=(i>>8)&255; d=i&255
    hc=' -m comment --comment \"reyes:%016x\"'%(i*2654435761 & (2**64-1)) if c else ''
    print('-A REYES-X -s %d.%d.%d.0/24 -p tcp -m tcp --dport %d -m comment --comment \"sg-%017x (web): tcp\"%s -g REYES-X2'%(a,b,d,1+i%65000,i,hc))
"
  echo 'COMMIT'
}
rules=$(mktemp); saved=$(mktemp)
for be in nft legacy; do
 for c in 0 1; do
  ns=reyes-savecost-$$-$be-$c; ip netns add $ns; trap "ip netns del $ns 2>/dev/null || true" EXIT
  gen $c > "$rules"
  ip netns exec $ns iptables-$be-restore --noflush < "$rules"
  s=$(date +%s.%N); ip netns exec $ns iptables-$be-save -t filter > "$saved"; e=$(date +%s.%N)
  s2=$(date +%s.%N); ip netns exec $ns iptables-$be-save -t filter > /dev/null; e2=$(date +%s.%N)
  echo "$be rules=$N hashcomment=$c save_s=$(python3 -c "print(round(min($e-$s,$e2-$s2),3))") bytes=$(wc -c <"$saved")"
  ip netns del $ns
 done
done
