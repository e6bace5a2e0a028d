# Draws the LAN benchmark's sweep (bench/lan.sh --sweep or --rate-sweep): throughput against
# message size, latency against offered load, and the daemons' CPU per message against the
# offered rate. Variables: sizes, load, rates (CSV files; a panel is drawn for each one given),
# out (PNG), title, lsize.
panels = (exists("sizes") ? 1 : 0) + (exists("load") ? 1 : 0) + (exists("rates") ? 1 : 0)
set terminal pngcairo size (panels * 700),560 font ",11"
set output out
set datafile separator ","
set key top right
set grid
set multiplot layout 1,panels title title

if (exists("sizes")) {
  set title "Throughput against message size (full load)"
  set logscale x 2
  set xlabel "message size (bytes)"
  set ylabel "messages/s (slowest receiver)"
  set y2label "MiB/s"
  set ytics nomirror
  set y2tics
  set yrange [0:*]
  set y2range [0:*]
  set format x "%.0f"
  plot sizes using 1:2 every ::1 with linespoints lw 2 pt 7 title "msg/s", \
       sizes using 1:3 every ::1 axes x1y2 with linespoints lw 2 pt 5 dt 2 title "MiB/s"
  unset logscale x
  unset y2label
  unset y2tics
  set ytics mirror
}

if (exists("load")) {
  set title sprintf("Latency against offered load (%s-byte messages)", lsize)
  set xlabel "offered load (% of the full-load rate)"
  set ylabel "send to delivery (µs)"
  set logscale y 10
  set yrange [*:*]
  set xrange [0:105]
  set format x "%g"
  plot load using 1:4 every ::1 with linespoints lw 2 pt 7 title "p50", \
       load using 1:5 every ::1 with linespoints lw 2 pt 5 title "p99"
  unset logscale y
  set xrange [*:*]
}

if (exists("rates")) {
  set title sprintf("Daemons' CPU per message against offered rate (%s-byte messages)", lsize)
  set logscale x 10
  set xlabel "offered load (msg/s, all senders)"
  set ylabel "daemons' CPU per message (µs, all daemons)"
  set yrange [0:*]
  set format x "%.0f"
  plot rates using 1:3 every ::1 with linespoints lw 2 pt 7 title "µs per message"
}
unset multiplot
