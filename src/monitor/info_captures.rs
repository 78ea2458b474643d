//! INFO replies captured from redis-server 7.0.15 (one master, one `replica-priority 0` replica,
//! started by hand, then the master killed and restarted with a second replica), for the tests.

/// `INFO replication` of a master right after a replica attached (full sync in progress).
pub(super) const MASTER_SYNCING: &str = "\
# Replication\r\n\
role:master\r\n\
connected_slaves:1\r\n\
slave0:ip=127.0.0.1,port=16402,state=wait_bgsave,offset=0,lag=0\r\n\
master_failover_state:no-failover\r\n\
master_replid:e6827f6bdc2a1d819db380902ce938cb07c58426\r\n\
master_replid2:0000000000000000000000000000000000000000\r\n\
master_repl_offset:50\r\n\
second_repl_offset:-1\r\n\
repl_backlog_active:1\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:1\r\n\
repl_backlog_histlen:50\r\n";

/// `INFO replication` of the same master once the replica is online.
pub(super) const MASTER_ONLINE: &str = "\
# Replication\r\n\
role:master\r\n\
connected_slaves:1\r\n\
slave0:ip=127.0.0.1,port=16402,state=online,offset=100,lag=1\r\n\
master_failover_state:no-failover\r\n\
master_replid:e6827f6bdc2a1d819db380902ce938cb07c58426\r\n\
master_replid2:0000000000000000000000000000000000000000\r\n\
master_repl_offset:100\r\n\
second_repl_offset:-1\r\n\
repl_backlog_active:1\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:1\r\n\
repl_backlog_histlen:100\r\n";

/// `INFO server replication` of a restarted master with two replicas (new replid, old one as replid2).
pub(super) const MASTER_TWO_REPLICAS: &str = "\
# Server\r\n\
redis_version:7.0.15\r\n\
redis_git_sha1:00000000\r\n\
redis_git_dirty:0\r\n\
redis_build_id:ae4d7c971a948f0\r\n\
redis_mode:standalone\r\n\
os:Linux 6.18.44-fc-v657 x86_64\r\n\
arch_bits:64\r\n\
monotonic_clock:POSIX clock_gettime\r\n\
multiplexing_api:epoll\r\n\
atomicvar_api:c11-builtin\r\n\
gcc_version:12.2.0\r\n\
process_id:8019\r\n\
process_supervised:no\r\n\
run_id:51ad5c22a559eda5c8242f18567b7de6dfd43f22\r\n\
tcp_port:16401\r\n\
server_time_usec:1795308336729856\r\n\
uptime_in_seconds:5\r\n\
uptime_in_days:0\r\n\
hz:10\r\n\
configured_hz:10\r\n\
lru_clock:146224\r\n\
executable:/tmp/cap/redis-server\r\n\
config_file:\r\n\
io_threads_active:0\r\n\
\r\n\
# Replication\r\n\
role:master\r\n\
connected_slaves:2\r\n\
slave0:ip=127.0.0.1,port=16403,state=online,offset=100,lag=0\r\n\
slave1:ip=127.0.0.1,port=16402,state=online,offset=100,lag=0\r\n\
master_failover_state:no-failover\r\n\
master_replid:a504ad2d774fc76bc1ba89aad24eee3c7bf878be\r\n\
master_replid2:e6827f6bdc2a1d819db380902ce938cb07c58426\r\n\
master_repl_offset:100\r\n\
second_repl_offset:51\r\n\
repl_backlog_active:1\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:51\r\n\
repl_backlog_histlen:50\r\n";

/// `INFO replication` of a `replica-priority 0` replica during its first sync: link down, never up.
pub(super) const REPLICA_SYNCING: &str = "\
# Replication\r\n\
role:slave\r\n\
master_host:127.0.0.1\r\n\
master_port:16401\r\n\
master_link_status:down\r\n\
master_last_io_seconds_ago:-1\r\n\
master_sync_in_progress:0\r\n\
slave_read_repl_offset:1\r\n\
slave_repl_offset:1\r\n\
master_link_down_since_seconds:-1\r\n\
slave_priority:0\r\n\
slave_read_only:1\r\n\
replica_announced:1\r\n\
connected_slaves:0\r\n\
master_failover_state:no-failover\r\n\
master_replid:869085129614ddcc40b21930e2dd86cc5fcfcba9\r\n\
master_replid2:0000000000000000000000000000000000000000\r\n\
master_repl_offset:0\r\n\
second_repl_offset:-1\r\n\
repl_backlog_active:0\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:0\r\n\
repl_backlog_histlen:0\r\n";

/// `INFO server replication` of that replica with its link up.
pub(super) const REPLICA_UP: &str = "\
# Server\r\n\
redis_version:7.0.15\r\n\
redis_git_sha1:00000000\r\n\
redis_git_dirty:0\r\n\
redis_build_id:ae4d7c971a948f0\r\n\
redis_mode:standalone\r\n\
os:Linux 6.18.44-fc-v657 x86_64\r\n\
arch_bits:64\r\n\
monotonic_clock:POSIX clock_gettime\r\n\
multiplexing_api:epoll\r\n\
atomicvar_api:c11-builtin\r\n\
gcc_version:12.2.0\r\n\
process_id:7562\r\n\
process_supervised:no\r\n\
run_id:92e9407e91aa8a52591642f65a97c855af23a0d2\r\n\
tcp_port:16402\r\n\
server_time_usec:1795308326609758\r\n\
uptime_in_seconds:10\r\n\
uptime_in_days:0\r\n\
hz:10\r\n\
configured_hz:10\r\n\
lru_clock:146214\r\n\
executable:/tmp/cap/redis-server\r\n\
config_file:\r\n\
io_threads_active:0\r\n\
\r\n\
# Replication\r\n\
role:slave\r\n\
master_host:127.0.0.1\r\n\
master_port:16401\r\n\
master_link_status:up\r\n\
master_last_io_seconds_ago:3\r\n\
master_sync_in_progress:0\r\n\
slave_read_repl_offset:100\r\n\
slave_repl_offset:100\r\n\
slave_priority:0\r\n\
slave_read_only:1\r\n\
replica_announced:1\r\n\
connected_slaves:0\r\n\
master_failover_state:no-failover\r\n\
master_replid:e6827f6bdc2a1d819db380902ce938cb07c58426\r\n\
master_replid2:0000000000000000000000000000000000000000\r\n\
master_repl_offset:100\r\n\
second_repl_offset:-1\r\n\
repl_backlog_active:1\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:51\r\n\
repl_backlog_histlen:50\r\n";

/// `INFO replication` of that replica 3 s after its master was killed.
pub(super) const REPLICA_LINK_DOWN: &str = "\
# Replication\r\n\
role:slave\r\n\
master_host:127.0.0.1\r\n\
master_port:16401\r\n\
master_link_status:down\r\n\
master_last_io_seconds_ago:-1\r\n\
master_sync_in_progress:0\r\n\
slave_read_repl_offset:100\r\n\
slave_repl_offset:100\r\n\
master_link_down_since_seconds:3\r\n\
slave_priority:0\r\n\
slave_read_only:1\r\n\
replica_announced:1\r\n\
connected_slaves:0\r\n\
master_failover_state:no-failover\r\n\
master_replid:e6827f6bdc2a1d819db380902ce938cb07c58426\r\n\
master_replid2:0000000000000000000000000000000000000000\r\n\
master_repl_offset:100\r\n\
second_repl_offset:-1\r\n\
repl_backlog_active:1\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:51\r\n\
repl_backlog_histlen:50\r\n";

pub(super) const ALL: [&str; 6] = [
    MASTER_SYNCING,
    MASTER_ONLINE,
    MASTER_TWO_REPLICAS,
    REPLICA_SYNCING,
    REPLICA_UP,
    REPLICA_LINK_DOWN,
];
