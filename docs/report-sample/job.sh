#!/bin/sh
# One job of the sample batch (docs/report-sample/make.sh): its argument decides how long
# it runs and how it ends. Job 29 is killed by a signal, job 50 runs past the timeout,
# multiples of 19 fail once and succeed when retried, multiples of 13 fail.
n=$1
t=$(( n * 37 % 17 ))
sleep "$(( t / 10 )).$(( t % 10 ))"
case $n in
  29) kill -9 $$ ;;
  50) sleep 5 ;;
esac
if [ $(( n % 19 )) -eq 0 ] && [ ! -e "$FLAKY_DIR/$n" ]; then
  : > "$FLAKY_DIR/$n"
  exit 1
fi
[ $(( n % 13 )) -ne 0 ]
