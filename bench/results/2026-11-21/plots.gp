set datafile separator ","
set terminal pngcairo size 900,560 font "sans,10"
set grid
set key top left opaque box
set logscale xy
set xlabel "offered deliveries/s (chat messages/s x room size)"
set ylabel "end-to-end latency, ms (send -> onChat at each member)"
set title "Room fan-out: latency vs offered rate"
set output "fanout_latency.png"
plot "fanout.csv" skip 1 using (strcol(1) eq "20x50" ? column(8) : NaN):(strcol(1) eq "20x50" ? column(20) : NaN) with linespoints lc 1 dt 1 pt 5 title "20x50 p50", \
     "fanout.csv" skip 1 using (strcol(1) eq "20x50" ? column(8) : NaN):(strcol(1) eq "20x50" ? column(22) : NaN) with linespoints lc 1 dt 2 pt 6 title "20x50 p99", \
     "fanout.csv" skip 1 using (strcol(1) eq "20x50" ? column(8) : NaN):(strcol(1) eq "20x50" ? column(24) : NaN) with linespoints lc 1 dt 3 pt 7 title "20x50 max", \
     "fanout.csv" skip 1 using (strcol(1) eq "2x500" ? column(8) : NaN):(strcol(1) eq "2x500" ? column(20) : NaN) with linespoints lc 2 dt 1 pt 5 title "2x500 p50", \
     "fanout.csv" skip 1 using (strcol(1) eq "2x500" ? column(8) : NaN):(strcol(1) eq "2x500" ? column(22) : NaN) with linespoints lc 2 dt 2 pt 6 title "2x500 p99", \
     "fanout.csv" skip 1 using (strcol(1) eq "2x500" ? column(8) : NaN):(strcol(1) eq "2x500" ? column(24) : NaN) with linespoints lc 2 dt 3 pt 7 title "2x500 max"
set ylabel "deliveries/s (onChat pushes received)"
set title "Room fan-out: throughput vs offered rate"
set output "fanout_throughput.png"
plot "fanout.csv" skip 1 using (strcol(1) eq "20x50" ? column(8) : NaN):(strcol(1) eq "20x50" ? column(19) : NaN) with linespoints lc 1 pt 7 title "20x50 delivered", \
     "fanout.csv" skip 1 using (strcol(1) eq "20x50" ? column(8) : NaN):(strcol(1) eq "20x50" ? column(8) : NaN) with lines lc 1 dt 2 title "20x50 offered (rate x members)", \
     "fanout.csv" skip 1 using (strcol(1) eq "2x500" ? column(8) : NaN):(strcol(1) eq "2x500" ? column(19) : NaN) with linespoints lc 2 pt 7 title "2x500 delivered", \
     "fanout.csv" skip 1 using (strcol(1) eq "2x500" ? column(8) : NaN):(strcol(1) eq "2x500" ? column(8) : NaN) with lines lc 2 dt 2 title "2x500 offered (rate x members)"
unset logscale y
set yrange [0:*]
set key top left
set ylabel "CPU, % of one core (2 cores = 200%)"
set title "Room fan-out 20x50: CPU by process kind"
set output "fanout_cpu.png"
plot "fanout.csv" skip 1 using (strcol(1) eq "20x50" ? column(8) : NaN):(strcol(1) eq "20x50" ? column(30) : NaN) with linespoints lc 1 pt 7 title "connector", \
     "fanout.csv" skip 1 using (strcol(1) eq "20x50" ? column(8) : NaN):(strcol(1) eq "20x50" ? column(31) : NaN) with linespoints lc 2 pt 7 title "chat", \
     "fanout.csv" skip 1 using (strcol(1) eq "20x50" ? column(8) : NaN):(strcol(1) eq "20x50" ? column(29) : NaN) with linespoints lc 3 pt 7 title "gate", \
     "fanout.csv" skip 1 using (strcol(1) eq "20x50" ? column(8) : NaN):(strcol(1) eq "20x50" ? column(32) : NaN) with linespoints lc 4 pt 7 title "registry", \
     "fanout.csv" skip 1 using (strcol(1) eq "20x50" ? column(8) : NaN):(strcol(1) eq "20x50" ? column(33) : NaN) with linespoints lc 5 pt 7 title "loadgen", \
     "fanout.csv" skip 1 using (strcol(1) eq "20x50" ? column(8) : NaN):(strcol(1) eq "20x50" ? column(34) : NaN) with linespoints lc 6 pt 7 title "softirq", \
     "fanout.csv" skip 1 using (strcol(1) eq "20x50" ? column(8) : NaN):(strcol(1) eq "20x50" ? column(35) : NaN) with linespoints lc 7 pt 7 title "machine"
unset logscale
set yrange [*:*]
set xlabel "idle connections (sessions in rooms)"
set ylabel "resident memory, MiB"
set y2label "server bytes per connection"
set y2tics
set ytics nomirror
set yrange [0:*]
set y2range [0:*]
set key outside below horizontal
set title "Server memory (VmRSS) vs connections"
set output "rss_vs_connections.png"
plot "connections.csv" skip 1 using (strcol(1) ne "after" ? column(2) / 1 : NaN):(strcol(1) ne "after" ? column(8) / 1024 : NaN) with linespoints lc 1 pt 7 title "all servers", \
     "connections.csv" skip 1 using (strcol(1) ne "after" ? column(2) / 1 : NaN):(strcol(1) ne "after" ? column(5) / 1024 : NaN) with linespoints lc 2 pt 7 title "connectors", \
     "connections.csv" skip 1 using (strcol(1) ne "after" ? column(2) / 1 : NaN):(strcol(1) ne "after" ? column(6) / 1024 : NaN) with linespoints lc 3 pt 7 title "chat servers", \
     "connections.csv" skip 1 using (strcol(1) ne "after" ? column(2) / 1 : NaN):(strcol(1) ne "after" ? column(4) / 1024 : NaN) with linespoints lc 4 pt 7 title "gate", \
     "connections.csv" skip 1 using (strcol(1) ne "after" ? column(2) / 1 : NaN):(strcol(1) ne "after" ? column(11) / 1 : NaN) axes x1y2 with linespoints lc 7 dt 2 pt 4 title "all servers, bytes/connection (right)"
unset y2tics
unset y2label
set ytics mirror
set yrange [0:*]
set ylabel "CPU, % of one core (2 cores = 200%)"
set key top left
set title "Idle connections: CPU spent on heartbeats alone"
set output "idle_cpu_vs_connections.png"
plot "connections.csv" skip 1 using (strcol(1) ne "after" ? column(2) / 1 : NaN):(strcol(1) ne "after" ? column(22) / 1 : NaN) with linespoints lc 1 pt 7 title "connector", \
     "connections.csv" skip 1 using (strcol(1) ne "after" ? column(2) / 1 : NaN):(strcol(1) ne "after" ? column(23) / 1 : NaN) with linespoints lc 2 pt 7 title "chat", \
     "connections.csv" skip 1 using (strcol(1) ne "after" ? column(2) / 1 : NaN):(strcol(1) ne "after" ? column(21) / 1 : NaN) with linespoints lc 3 pt 7 title "gate", \
     "connections.csv" skip 1 using (strcol(1) ne "after" ? column(2) / 1 : NaN):(strcol(1) ne "after" ? column(25) / 1 : NaN) with linespoints lc 4 pt 7 title "loadgen", \
     "connections.csv" skip 1 using (strcol(1) ne "after" ? column(2) / 1 : NaN):(strcol(1) ne "after" ? column(27) / 1 : NaN) with linespoints lc 5 pt 7 title "machine"
