// Secrets in the deployment config: the Redis URL parser (shared with RedisClient), redis.password,
// kafka.properties and their environment overrides, and redaction in every message.
#include <map>

#include <gtest/gtest.h>

#include "config/deployment_config.h"
#include "config/redact.h"
#include "config/redis_url.h"
#include "test_support.h"

namespace fleet {
namespace {

using test::error_of;

const std::string kModel = "model: {path: /m.bin}\nstages: [{layers: [0, 2]}]\n";

EnvLookup auth_env(std::map<std::string, std::string> vars = {}) {
  return [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

DeploymentConfig parse(const std::string& kafka, const std::string& redis, const EnvLookup& env = auth_env()) {
  return parse_config("kafka: " + kafka + "\nredis: " + redis + "\n" + kModel, "auth.yaml", "/", env);
}

std::string parse_error(const std::string& kafka, const std::string& redis, const EnvLookup& env = auth_env()) {
  return error_of([&] { parse(kafka, redis, env); });
}

// ------------------------------------------------------------------------------ Redis URLs

TEST(RedisUrl, TcpForms) {
  RedisUrl u = parse_redis_url("redis://cache.local");
  EXPECT_FALSE(u.unix_socket);
  EXPECT_EQ(u.host, "cache.local");
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.db, 0);
  EXPECT_EQ(u.str(), "redis://cache.local:6379/0");

  u = parse_redis_url("redis://alice:s3cret@[::1]:7000/15");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.user, "alice");
  EXPECT_EQ(u.password, "s3cret");
  EXPECT_EQ(u.str(), "redis://alice:***@[::1]:7000/15");
  EXPECT_EQ(parse_redis_url(u.secret_url()), u);

  u = parse_redis_url("redis://pw-only@h:1/2");  // as redis-cli -u reads it: a password
  EXPECT_EQ(u.user, "");
  EXPECT_EQ(u.password, "pw-only");
  EXPECT_EQ(u.str(), "redis://:***@h:1/2");

  u = parse_redis_url("redis://alice:@h");  // a user whose password comes from redis.password
  EXPECT_EQ(u.user, "alice");
  EXPECT_EQ(u.password, "");
}

TEST(RedisUrl, UserAndPasswordArePercentDecodedAndRoundTrip) {
  RedisUrl u = parse_redis_url("redis://us%3Aer:p%40ss%2Fw%3Ard%25@h:6380/1");
  EXPECT_EQ(u.user, "us:er");
  EXPECT_EQ(u.password, "p@ss/w:rd%");
  // A raw '@' or '/' in the password still parses (the user-info ends at the last '@').
  u = parse_redis_url("redis://:a@b/c@h:1/0");
  EXPECT_EQ(u.password, "a@b/c");
  EXPECT_EQ(u.host, "h");
  for (std::string pw : {"plain", "with space", "p@ss:w/rd%?#[]", "\xc3\xa9t\xc3\xa9"}) {
    RedisUrl x;
    x.host = "h";
    x.user = "bob";
    x.password = pw;
    EXPECT_EQ(parse_redis_url(x.secret_url()), x) << x.secret_url();
    RedisUrl y;
    y.unix_socket = true;
    y.socket_path = "/run/redis/redis.sock";
    y.db = 3;
    y.password = pw;
    EXPECT_EQ(parse_redis_url(y.secret_url()), y) << y.secret_url();
  }
}

TEST(RedisUrl, UnixSockets) {
  RedisUrl u = parse_redis_url("unix:///run/redis/redis.sock");
  EXPECT_TRUE(u.unix_socket);
  EXPECT_EQ(u.socket_path, "/run/redis/redis.sock");
  EXPECT_EQ(u.db, 0);
  EXPECT_EQ(u.str(), "unix:///run/redis/redis.sock");

  u = parse_redis_url("unix://alice:s3cret@/tmp/r.sock?db=4");
  EXPECT_EQ(u.socket_path, "/tmp/r.sock");
  EXPECT_EQ(u.user, "alice");
  EXPECT_EQ(u.password, "s3cret");
  EXPECT_EQ(u.db, 4);
  EXPECT_EQ(u.str(), "unix://alice:***@/tmp/r.sock?db=4");

  EXPECT_NE(error_of([] { parse_redis_url("unix://"); }).find("missing socket path"), std::string::npos);
  EXPECT_NE(error_of([] { parse_redis_url("unix://run/r.sock"); }).find("must be absolute"), std::string::npos);
  EXPECT_NE(error_of([] { parse_redis_url("unix:///r.sock?timeout=3"); }).find("unknown parameter"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_redis_url("unix:///r.sock?db=x"); }).find("not a non-negative integer"),
            std::string::npos);
}

TEST(RedisUrl, TlsIsRefusedClearly) {
  const std::string err = error_of([] { parse_redis_url("rediss://u:TopSecret1@cache:6380/0"); });
  EXPECT_NE(err.find("rediss:// (Redis over TLS) is not supported"), std::string::npos) << err;
  EXPECT_NE(err.find("hiredis of Debian 12"), std::string::npos) << err;
  EXPECT_EQ(err.find("TopSecret1"), std::string::npos) << err;
  EXPECT_NE(err.find("u:***@cache"), std::string::npos) << err;
}

TEST(RedisUrl, ErrorsNeverShowThePassword) {
  const char* bad[] = {"redis://u:Hunter2pw@host:99999/0", "redis://:Hunter2pw@/0", "redis://Hunter2pw@host/x",
                       "redis://u:Hunter2pw%zz@host", "unix://u:Hunter2pw@/s?db=-1", "http://u:Hunter2pw@h",
                       "redis://u:Hunter2pw@[::1"};
  for (const char* url : bad) {
    const std::string err = error_of([&] { parse_redis_url(url); });
    EXPECT_NE(err.find("bad Redis URL"), std::string::npos) << url << " -> " << err;
    EXPECT_EQ(err.find("Hunter2pw"), std::string::npos) << url << " -> " << err;
  }
}

TEST(Redaction, PropertiesUrlsAndText) {
  for (const char* name : {"sasl.password", "ssl.key.password", "sasl.oauthbearer.client.secret", "ssl.key.pem",
                           "sasl.oauthbearer.config", "SASL.PASSWORD", "sasl.jaas.config", "ssl.keystore.password"})
    EXPECT_TRUE(is_secret_property(name)) << name;
  for (const char* name : {"security.protocol", "sasl.mechanism", "sasl.username", "linger.ms", "ssl.ca.location"})
    EXPECT_FALSE(is_secret_property(name)) << name;
  EXPECT_EQ(redacted_property("sasl.password", "x"), "***");
  EXPECT_EQ(redacted_property("sasl.username", "fleet"), "fleet");
  EXPECT_EQ(redact_redis_url("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
  EXPECT_EQ(redact_redis_url("redis://pw@h"), "redis://***@h");
  EXPECT_EQ(redact_redis_url("redis://h:1/0"), "redis://h:1/0");
  EXPECT_EQ(redact_redis_url("garbage:p@w@x"), "garbage:***@x");
  EXPECT_EQ(scrub("a s3cret b s3cret", {"s3cret", ""}), "a *** b ***");
}

// ------------------------------------------------------------------------- redis.password

TEST(RedisPassword, FromTheFileTheUrlOrTheEnvironment) {
  // In the URL: kept as written.
  DeploymentConfig c = parse("{brokers: k:1}", "{url: 'redis://:inurl@r:1/0'}");
  EXPECT_EQ(c.redis.url, "redis://:inurl@r:1/0");
  EXPECT_EQ(c.redis.redacted_url(), "redis://:***@r:1/0");
  EXPECT_EQ(c.secrets(), std::vector<std::string>{"inurl"});

  // redis.password: put into the effective URL (percent-encoded), with the URL's user.
  c = parse("{brokers: k:1}", "{url: 'redis://alice:@r:1/2', password: 'p@ss word'}");
  RedisUrl u = parse_redis_url(c.redis.url);
  EXPECT_EQ(u.user, "alice");
  EXPECT_EQ(u.password, "p@ss word");
  EXPECT_EQ(u.db, 2);
  EXPECT_EQ(c.redis.redacted_url().find("p@ss"), std::string::npos) << c.redis.redacted_url();
  EXPECT_EQ(c.secrets(), std::vector<std::string>{"p@ss word"});

  // FLEET_REDIS_PASSWORD wins over redis.password, which wins over the URL's.
  c = parse("{brokers: k:1}", "{url: 'redis://:inurl@r:1/0', password: infile}",
            auth_env({{"FLEET_REDIS_PASSWORD", "inenv"}}));
  EXPECT_EQ(parse_redis_url(c.redis.url).password, "inenv");
  c = parse("{brokers: k:1}", "{url: 'redis://:inurl@r:1/0', password: infile}", auth_env({{"FLEET_REDIS_PASSWORD", ""}}));
  EXPECT_EQ(parse_redis_url(c.redis.url).password, "infile");

  // A unix socket takes a password too.
  c = parse("{brokers: k:1}", "{url: 'unix:///run/r.sock?db=1', password: pw1}");
  u = parse_redis_url(c.redis.url);
  EXPECT_TRUE(u.unix_socket);
  EXPECT_EQ(u.password, "pw1");
  EXPECT_EQ(u.db, 1);
}

TEST(RedisPassword, ErrorsAreClearAndNeverShowIt) {
  std::string err = parse_error("{brokers: k:1}", "{url: 'redis://alice:@r:1/0'}");
  EXPECT_NE(err.find("names user 'alice' but no password"), std::string::npos) << err;
  err = parse_error("{brokers: k:1}", "{url: 'redis://r:1/0', password: ''}");
  EXPECT_NE(err.find("redis.password: empty"), std::string::npos) << err;
  err = parse_error("{brokers: k:1}", "{url: 'rediss://r:1/0', password: Hunter2pw}");
  EXPECT_NE(err.find("auth.yaml: redis.url: bad Redis URL"), std::string::npos) << err;
  EXPECT_NE(err.find("hiredis of Debian 12"), std::string::npos) << err;
  err = parse_error("{brokers: k:1}", "{url: 'redis://u:Hunter2pw@r:99999/0'}");
  EXPECT_NE(err.find("not a number in 1..65535"), std::string::npos) << err;
  EXPECT_EQ(err.find("Hunter2pw"), std::string::npos) << err;
  err = parse_error("{brokers: k:1}", "{url: 'redis://r:1/0', password: [Hunter2pw]}");
  EXPECT_NE(err.find("redis.password: expected a single value"), std::string::npos) << err;
  EXPECT_EQ(err.find("Hunter2pw"), std::string::npos) << err;
  err = parse_error("{brokers: k:1}", "{url: 'redis://r:1/0', pasword: x}");
  EXPECT_NE(err.find("redis.pasword: unknown key"), std::string::npos) << err;
}

// ------------------------------------------------------------------------ kafka.properties

TEST(KafkaProperties, ReadAsStringsAndApplied) {
  DeploymentConfig c = parse(R"({brokers: k:1, properties: {security.protocol: SASL_SSL, sasl.mechanisms: PLAIN,
      sasl.username: fleet, sasl.password: "Hunter2pw", linger.ms: 5, socket.keepalive.enable: true}})",
                             "{url: 'redis://r:1/0'}");
  const std::map<std::string, std::string> want = {
      {"security.protocol", "SASL_SSL"}, {"sasl.mechanism", "PLAIN"},  // the alias is normalized
      {"sasl.username", "fleet"},        {"sasl.password", "Hunter2pw"},
      {"linger.ms", "5"},                {"socket.keepalive.enable", "true"}};
  EXPECT_EQ(c.kafka.properties, want);
  EXPECT_EQ(c.secrets(), std::vector<std::string>{"Hunter2pw"});
  const std::string text = c.endpoints_text();
  EXPECT_NE(text.find("sasl.password=***"), std::string::npos) << text;
  EXPECT_NE(text.find("sasl.username=fleet"), std::string::npos) << text;
  EXPECT_EQ(text.find("Hunter2pw"), std::string::npos) << text;
  // None is the default.
  EXPECT_TRUE(parse("{brokers: k:1}", "{url: 'redis://r:1/0'}").kafka.properties.empty());
}

TEST(KafkaProperties, EnvironmentOverrides) {
  EXPECT_EQ(kafka_property_env_var("sasl.password"), "FLEET_KAFKA_SASL_PASSWORD");
  EXPECT_EQ(kafka_property_env_var("ssl.key.password"), "FLEET_KAFKA_SSL_KEY_PASSWORD");
  EXPECT_EQ(kafka_property_env_var("client.id"), "FLEET_KAFKA_CLIENT_ID");
  // The listed properties come from the environment even when the file does not name them;
  // any property the file names can be overridden; empty values do not override.
  auto env = auth_env({{"FLEET_KAFKA_SASL_PASSWORD", "fromenv"},
                     {"FLEET_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"},
                     {"FLEET_KAFKA_CLIENT_ID", "env-client"},
                     {"FLEET_KAFKA_LINGER_MS", "7"},
                     {"FLEET_KAFKA_SASL_USERNAME", ""}});
  DeploymentConfig c = parse("{brokers: k:1, properties: {linger.ms: 5, sasl.username: u, sasl.password: file}}",
                             "{url: 'redis://r:1/0'}", env);
  const std::map<std::string, std::string> want = {{"linger.ms", "7"},
                                                    {"sasl.username", "u"},
                                                    {"sasl.password", "fromenv"},
                                                    {"security.protocol", "SASL_PLAINTEXT"}};
  EXPECT_EQ(c.kafka.properties, want);  // client.id: not named in the file, not in the list
}

TEST(KafkaProperties, RefusedProperties) {
  struct Case {
    std::string props, expected;
  };
  const Case cases[] = {
      {"{bootstrap.servers: x:1}", "kafka.properties.bootstrap.servers: set by the fleet: use kafka.brokers"},
      {"{message.max.bytes: 5}", "kafka.properties.message.max.bytes: set by the fleet: use kafka.max_message_bytes"},
      {"{group.id: g}", "kafka.properties.group.id: set by the fleet"},
      {"{enable.auto.commit: 'true'}", "kafka.properties.enable.auto.commit: set by the fleet"},
      {"{partitioner: random}", "kafka.properties.partitioner: set by the fleet"},
      {"{'sasl password': x}", "kafka.properties.sasl password: not a librdkafka property name"},
      {"{sasl.password: [Hunter2pw]}", "kafka.properties.sasl.password: expected a single value"},
      {"{sasl.password: {a: Hunter2pw}}", "kafka.properties.sasl.password: expected a single value"},
      {"{sasl.password: }", "kafka.properties.sasl.password: expected a single value"},
      {"[a, b]", "kafka.properties: expected a mapping"},
      {"{sasl.mechanism: PLAIN, sasl.mechanisms: PLAIN}", "both sasl.mechanism and sasl.mechanisms"},
  };
  for (const Case& tc : cases) {
    const std::string err = parse_error("{brokers: k:1, properties: " + tc.props + "}", "{url: 'redis://r:1/0'}");
    EXPECT_NE(err.find(tc.expected), std::string::npos) << tc.props << " -> " << err;
    EXPECT_EQ(err.rfind("auth.yaml", 0), 0u) << err;
    EXPECT_EQ(err.find("Hunter2pw"), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace fleet
