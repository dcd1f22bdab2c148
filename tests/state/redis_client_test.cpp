// RedisClient against a real redis-server: URLs, connection errors, binary-safe
// arguments, errors naming the command, pipelines, transactions, reconnect-once.
#include <gtest/gtest.h>

#include <memory>

#include "state/redis_client.h"
#include "state/redis_server.h"
#include "test_support.h"

namespace fleet {
namespace {

using test::error_of;

class RedisClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = std::make_unique<test::RedisServer>(); }
  static void TearDownTestSuite() { server_.reset(); }
  void SetUp() override {
    RedisClient admin(server_->url());
    admin.command({"FLUSHALL"});
  }
  static std::unique_ptr<test::RedisServer> server_;
};
std::unique_ptr<test::RedisServer> RedisClientTest::server_;

TEST(RedisUrlTest, ParsesHostPortDbAndAuth) {
  RedisUrl u = parse_redis_url("redis://127.0.0.1:6380/2");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.db, 2);
  EXPECT_TRUE(u.password.empty());

  u = parse_redis_url("redis://cache.local");
  EXPECT_EQ(u.host, "cache.local");
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.db, 0);

  u = parse_redis_url("redis://alice:s3cret@[::1]:7000/15");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 7000);
  EXPECT_EQ(u.db, 15);
  EXPECT_EQ(u.user, "alice");
  EXPECT_EQ(u.password, "s3cret");
  EXPECT_EQ(u.str(), "redis://alice:***@[::1]:7000/15");  // never prints the password

  u = parse_redis_url("redis://:pw@h:1/");
  EXPECT_EQ(u.password, "pw");
  EXPECT_EQ(u.db, 0);
}

TEST(RedisUrlTest, BadUrlsGiveClearErrors) {
  struct Case {
    const char* url;
    const char* why;
  };
  const Case cases[] = {
      {"http://127.0.0.1:6379/0", "must start with redis://"},
      {"127.0.0.1:6379", "must start with redis://"},
      {"redis://", "missing host"},
      {"redis://:6379/0", "missing host"},
      {"redis://host:/0", "empty port"},
      {"redis://host:0/0", "not a number in 1..65535"},
      {"redis://host:70000/0", "not a number in 1..65535"},
      {"redis://host:63x9/0", "not a number in 1..65535"},
      {"redis://host:6379/abc", "not a non-negative integer"},
      {"redis://host:6379/-1", "not a non-negative integer"},
      {"redis://[::1/0", "unterminated"},
  };
  for (const Case& c : cases) {
    std::string err = error_of([&] { parse_redis_url(c.url); });
    EXPECT_NE(err.find("bad Redis URL"), std::string::npos) << c.url << " -> " << err;
    EXPECT_NE(err.find(c.url), std::string::npos) << c.url << " -> " << err;
    EXPECT_NE(err.find(c.why), std::string::npos) << c.url << " -> " << err;
  }
  // The constructor reports the same error, without trying to connect.
  std::string err = error_of([] { RedisClient c("redis://host:99999/0"); });
  EXPECT_NE(err.find("bad Redis URL"), std::string::npos) << err;
}

TEST(RedisConnectTest, RefusedConnectionNamesTheAddress) {
  int port = test::free_loopback_port();  // nothing listens there
  std::string url = "redis://127.0.0.1:" + std::to_string(port) + "/0";
  std::string err = error_of([&] { RedisClient c(url); });
  EXPECT_NE(err.find("cannot connect"), std::string::npos) << err;
  EXPECT_NE(err.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << err;
  EXPECT_NE(err.find("refused"), std::string::npos) << err;
}

TEST_F(RedisClientTest, SelectsTheDatabaseOfTheUrl) {
  RedisClient db0(server_->url(0));
  RedisClient db3(server_->url(3));
  db3.set("k", "in-3");
  EXPECT_EQ(db3.get("k"), "in-3");
  EXPECT_EQ(db0.get("k"), std::nullopt);
  std::string err = error_of([&] { RedisClient c(server_->url(99)); });  // default: 16 databases
  EXPECT_NE(err.find("SELECT 99"), std::string::npos) << err;
}

TEST_F(RedisClientTest, ArgumentsAreBinarySafe) {
  RedisClient c(server_->url());
  const std::string value("a\0b\r\n$3\r\nxyz \"q\"", 16);
  c.set(std::string("key\0with nul", 12), value);
  EXPECT_EQ(c.get(std::string("key\0with nul", 12)), value);
  EXPECT_EQ(c.get("key"), std::nullopt);
  c.hset("h", {{"f 1", value}, {"f2", ""}});
  EXPECT_EQ(c.hget("h", "f 1"), value);
  EXPECT_EQ(c.hget("h", "f2"), "");
  EXPECT_EQ(c.hget("h", "missing"), std::nullopt);
  auto all = c.hgetall("h");
  EXPECT_EQ(all.size(), 2u);
  EXPECT_EQ(all["f 1"], value);
}

TEST_F(RedisClientTest, ErrorsNameTheCommandAndKey) {
  RedisClient c(server_->url());
  c.set("plain", "v");
  std::string err = error_of([&] { c.hgetall("plain"); });
  EXPECT_NE(err.find("HGETALL plain"), std::string::npos) << err;
  EXPECT_NE(err.find("WRONGTYPE"), std::string::npos) << err;
  err = error_of([&] { c.command({"NOSUCHCMD", "x"}); });
  EXPECT_NE(err.find("NOSUCHCMD x"), std::string::npos) << err;
  EXPECT_NE(err.find(server_->url()), std::string::npos) << err;
  // The connection is still usable after an error reply.
  EXPECT_EQ(c.get("plain"), "v");
}

// A server that answers "not yet" (LOADING after a restart, BUSY, TRYAGAIN) is unavailable, so
// workers wait and retry; any other error reply is an error. The replies come from a script, as
// a real server sends them while it loads its append-only file.
TEST_F(RedisClientTest, LoadingAndBusyRepliesAreUnavailableOtherErrorsAreNot) {
  RedisClient c(server_->url());
  for (const char* reply : {"LOADING Redis is loading the dataset in memory", "BUSY Redis is busy running a script",
                            "TRYAGAIN Multiple keys request during rehashing of slot"}) {
    const std::string script = std::string("return redis.error_reply('") + reply + "')";
    EXPECT_THROW(c.command({"EVAL", script, "0"}), RedisUnavailable) << reply;
  }
  c.set("plain", "v");
  try {
    c.hgetall("plain");
    ADD_FAILURE() << "WRONGTYPE expected";
  } catch (const RedisUnavailable& e) {
    ADD_FAILURE() << "WRONGTYPE is not a transient condition: " << e.what();
  } catch (const RedisError&) {
  }
}

TEST_F(RedisClientTest, PipelineReturnsRepliesInOrderAndSurvivesAnError) {
  RedisClient c(server_->url());
  std::vector<RedisArgs> cmds;
  for (int i = 0; i < 100; ++i) cmds.push_back({"INCR", "n"});
  std::vector<RedisReply> r = c.pipeline(cmds);
  ASSERT_EQ(r.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(r[i].as_integer(), i + 1);

  c.set("s", "x");
  std::string err = error_of([&] { c.pipeline({{"INCR", "n"}, {"LPUSH", "s", "v"}, {"INCR", "n"}}); });
  EXPECT_NE(err.find("LPUSH s"), std::string::npos) << err;
  // Every reply was read: both INCRs ran and the connection is in sync.
  EXPECT_EQ(c.get("n"), "102");
}

TEST_F(RedisClientTest, TransactionIsAtomicAndReturnsInnerReplies) {
  RedisClient c(server_->url());
  std::vector<RedisReply> r = c.transaction({{"SET", "a", "1"}, {"INCR", "a"}, {"GET", "a"}});
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[1].as_integer(), 2);
  EXPECT_EQ(r[2].as_string(), "2");
  c.set("s", "x");
  std::string err = error_of([&] { c.transaction({{"INCR", "a"}, {"HSET", "s", "f", "v"}}); });
  EXPECT_NE(err.find("HSET s"), std::string::npos) << err;
}

TEST_F(RedisClientTest, EvalRunsScriptsAndReloadsAfterFlush) {
  RedisClient c(server_->url());
  const std::string script = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
  EXPECT_EQ(c.eval(script, {"n"}, {"5"}).as_integer(), 5);
  c.command({"SCRIPT", "FLUSH"});
  EXPECT_EQ(c.eval(script, {"n"}, {"2"}).as_integer(), 7);  // NOSCRIPT -> loaded again
}

TEST_F(RedisClientTest, ReconnectsOnceAfterTheConnectionIsKilled) {
  RedisClient c(server_->url(4));
  RedisClient admin(server_->url());
  c.set("k", "v");
  long long id = c.client_id();
  EXPECT_EQ(admin.command({"CLIENT", "KILL", "ID", std::to_string(id)}).as_integer(), 1);
  // The next command finds the connection closed, reconnects, SELECTs 4 again, retries.
  EXPECT_EQ(c.get("k"), "v");
  EXPECT_NE(c.client_id(), id);
  // Again, with a pipeline.
  admin.command({"CLIENT", "KILL", "ID", std::to_string(c.client_id())});
  std::vector<RedisReply> r = c.pipeline({{"INCR", "n"}, {"INCR", "n"}});
  EXPECT_EQ(r[1].as_integer(), 2);
}

TEST_F(RedisClientTest, LargeWriteOnAKilledConnectionReconnectsInsteadOfDying) {
  // Writing megabytes to a socket the server has closed fails with EPIPE on a later
  // write(); that must become a reconnect, not a SIGPIPE that kills the process.
  RedisClient c(server_->url());
  RedisClient admin(server_->url());
  admin.command({"CLIENT", "KILL", "ID", std::to_string(c.client_id())});
  const std::string big(8 << 20, 'x');
  c.set("big", big);
  EXPECT_EQ(c.command({"STRLEN", "big"}).as_integer(), static_cast<long long>(big.size()));
}

TEST(RedisServerGoneTest, CommandsFailClearlyWhenTheServerIsDown) {
  auto server = std::make_unique<test::RedisServer>();
  RedisClient c(server->url());
  c.set("k", "v");
  std::string url = server->url();
  server->stop();
  std::string err = error_of([&] { c.get("k"); });
  EXPECT_NE(err.find("GET k"), std::string::npos) << err;
  EXPECT_NE(err.find("reconnecting failed"), std::string::npos) << err;
  EXPECT_NE(err.find("refused"), std::string::npos) << err;
  // Still no crash, and still a clear error, on the next call.
  err = error_of([&] { c.ping(); });
  EXPECT_NE(err.find("cannot connect"), std::string::npos) << err;
}

TEST(RedisReplyTest, TypedAccessorsRejectTheWrongType) {
  RedisReply r;
  r.type = RedisReply::Type::Integer;
  r.integer = 3;
  EXPECT_EQ(r.as_integer(), 3);
  EXPECT_NE(error_of([&] { r.as_string(); }).find("expected a string reply, got integer"), std::string::npos);
  RedisReply odd;
  odd.type = RedisReply::Type::Array;
  odd.elements.resize(3);
  EXPECT_NE(error_of([&] { odd.as_map(); }).find("odd-sized"), std::string::npos);
}

}  // namespace
}  // namespace fleet
