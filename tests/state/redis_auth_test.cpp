// RedisClient against a redis-server that requires a password (--requirepass) or listens on a
// unix socket: AUTH from the URL and from the config's redis.password, Redis 6 ACL users, AUTH
// again after a reconnect, and errors that are clear without ever showing the password.
#include <gtest/gtest.h>

#include <memory>

#include "config/deployment_config.h"
#include "state/redis_client.h"
#include "state/redis_server.h"
#include "test_support.h"

namespace fleet {
namespace {

using test::error_of;

constexpr const char* kPassword = "Sup3r-Secret.pw";

class RedisAuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    test::RedisServerOptions o;
    o.password = kPassword;
    o.unix_socket = true;
    server_ = std::make_unique<test::RedisServer>(o);
  }
  static void TearDownTestSuite() { server_.reset(); }
  void SetUp() override { RedisClient(server_->url_with_password()).command({"FLUSHALL"}); }
  static std::unique_ptr<test::RedisServer> server_;
};
std::unique_ptr<test::RedisServer> RedisAuthTest::server_;

// The config of a deployment whose redis section is `redis`, parsed without the process env.
DeploymentConfig config_with(const std::string& redis,
                             std::map<std::string, std::string> env = {}) {
  EnvLookup lookup = [env](const std::string& k) -> std::optional<std::string> {
    auto it = env.find(k);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  return parse_config("kafka: {brokers: k:1}\nredis: " + redis + "\nmodel: {path: /m}\nstages: [{layers: [0, 1]}]\n",
                      "auth.yaml", "/", lookup);
}

TEST_F(RedisAuthTest, PasswordInTheUrl) {
  RedisClient c(server_->url_with_password(2));
  c.set("k", "v");
  EXPECT_EQ(c.get("k"), "v");
  EXPECT_EQ(c.url().password, kPassword);
  EXPECT_EQ(c.url().str().find(kPassword), std::string::npos);
}

TEST_F(RedisAuthTest, PasswordFromTheConfigFieldOrTheEnvironment) {
  DeploymentConfig cfg = config_with("{url: '" + server_->url(3) + "', password: '" + kPassword + "'}");
  RedisClient c(cfg.redis.url);
  c.set("k", "from-config");
  EXPECT_EQ(RedisClient(server_->url_with_password(3)).get("k"), "from-config");

  cfg = config_with("{url: '" + server_->url(3) + "'}", {{"FLEET_REDIS_PASSWORD", kPassword}});
  EXPECT_EQ(RedisClient(cfg.redis.url).get("k"), "from-config");
}

TEST_F(RedisAuthTest, NoPasswordGetsNoauthOnTheFirstCommand) {
  RedisClient c(server_->url());  // nothing to AUTH with: connecting succeeds
  const std::string err = error_of([&] { c.ping(); });
  EXPECT_NE(err.find("NOAUTH"), std::string::npos) << err;
}

TEST_F(RedisAuthTest, WrongPasswordIsAClearErrorWithoutThePassword) {
  const std::string wrong = "Wr0ng-Guess.pw";
  const std::string url = "redis://:" + wrong + "@127.0.0.1:" + std::to_string(server_->port()) + "/0";
  std::string err = error_of([&] { RedisClient c(url); });
  EXPECT_NE(err.find("AUTH failed"), std::string::npos) << err;
  EXPECT_NE(err.find("WRONGPASS"), std::string::npos) << err;
  EXPECT_NE(err.find("redis://:***@127.0.0.1:" + std::to_string(server_->port())), std::string::npos) << err;
  EXPECT_EQ(err.find(wrong), std::string::npos) << err;
  EXPECT_EQ(err.find(kPassword), std::string::npos) << err;

  // The same through the config's password field.
  DeploymentConfig cfg = config_with("{url: '" + server_->url() + "', password: '" + wrong + "'}");
  err = error_of([&] { RedisClient c(cfg.redis.url); });
  EXPECT_NE(err.find("WRONGPASS"), std::string::npos) << err;
  EXPECT_EQ(err.find(wrong), std::string::npos) << err;
  // An AUTH sent as a command never shows its argument either.
  RedisClient c(server_->url_with_password());
  err = error_of([&] { c.command({"AUTH", wrong}); });
  EXPECT_NE(err.find("redis AUTH on"), std::string::npos) << err;
  EXPECT_EQ(err.find(wrong), std::string::npos) << err;
}

TEST_F(RedisAuthTest, AclUserAuthenticatesWithUserAndPassword) {
  RedisClient admin(server_->url_with_password());
  admin.command({"ACL", "SETUSER", "alice", "on", ">al1ce:p@ss", "~*", "&*", "+@all"});
  // Special characters percent-encoded in the URL, or raw in redis.password.
  RedisClient c("redis://alice:al1ce%3Ap%40ss@127.0.0.1:" + std::to_string(server_->port()) + "/0");
  EXPECT_EQ(c.command({"ACL", "WHOAMI"}).as_string(), "alice");
  DeploymentConfig cfg =
      config_with("{url: 'redis://alice:@127.0.0.1:" + std::to_string(server_->port()) + "/0', password: 'al1ce:p@ss'}");
  EXPECT_EQ(RedisClient(cfg.redis.url).command({"ACL", "WHOAMI"}).as_string(), "alice");

  const std::string err = error_of([&] { RedisClient x("redis://alice:nope-x1@127.0.0.1:" + std::to_string(server_->port())); });
  EXPECT_NE(err.find("WRONGPASS"), std::string::npos) << err;
  EXPECT_NE(err.find("alice:***@"), std::string::npos) << err;
  EXPECT_EQ(err.find("nope-x1"), std::string::npos) << err;
  // A user without a password is refused before connecting.
  EXPECT_NE(error_of([&] { RedisClient x("redis://alice:@127.0.0.1:1/0"); }).find("user 'alice' without a password"),
            std::string::npos);
}

TEST_F(RedisAuthTest, ReconnectAuthenticatesAgain) {
  RedisClient c(server_->url_with_password(5));
  RedisClient admin(server_->url_with_password());
  c.set("k", "v");
  const long long id = c.client_id();
  EXPECT_EQ(admin.command({"CLIENT", "KILL", "ID", std::to_string(id)}).as_integer(), 1);
  EXPECT_EQ(c.get("k"), "v");  // reconnected, AUTH and SELECT 5 again, retried
  EXPECT_NE(c.client_id(), id);
}

TEST_F(RedisAuthTest, UnixSocket) {
  const std::string with_pw = "unix://:" + std::string(kPassword) + "@" + server_->socket_path() + "?db=2";
  RedisClient c(with_pw);
  EXPECT_TRUE(c.url().unix_socket);
  c.set("over-the-socket", "yes");
  EXPECT_EQ(RedisClient(server_->url_with_password(2)).get("over-the-socket"), "yes");  // same server, db 2
  EXPECT_EQ(c.url().str(), "unix://:***@" + server_->socket_path() + "?db=2");
  // Through the config, with the password field; reconnects over the socket too.
  DeploymentConfig cfg = config_with("{url: '" + server_->socket_url(2) + "', password: '" + kPassword + "'}");
  RedisClient d(cfg.redis.url);
  RedisClient(server_->url_with_password()).command({"CLIENT", "KILL", "ID", std::to_string(d.client_id())});
  EXPECT_EQ(d.get("over-the-socket"), "yes");
  // A socket that does not exist: a clear error naming it.
  const std::string err = error_of([] { RedisClient x("unix:///tmp/fleet-no-such-redis.sock"); });
  EXPECT_NE(err.find("cannot connect to unix:///tmp/fleet-no-such-redis.sock"), std::string::npos) << err;
}

TEST(RedisTlsTest, RedissIsRefusedNamingTheReason) {
  const std::string err = error_of([] { RedisClient c("rediss://:Hunter2pw@127.0.0.1:6380/0"); });
  EXPECT_NE(err.find("rediss:// (Redis over TLS) is not supported"), std::string::npos) << err;
  EXPECT_NE(err.find("hiredis"), std::string::npos) << err;
  EXPECT_EQ(err.find("Hunter2pw"), std::string::npos) << err;
}

}  // namespace
}  // namespace fleet
