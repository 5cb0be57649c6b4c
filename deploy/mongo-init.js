// Runs once, when the MongoDB data volume is empty (docker-entrypoint-initdb.d).
// Creates the two application users the compose stack uses:
//   - the app user (readWrite): Dagster assets and the stream consumer write candles;
//   - the read-only user: the API and the dashboard only read.
// Names and passwords come from the environment (see .env.example); nothing is inline.
const dbName = process.env.CRYPTOBOT_MONGO_DB || "cryptobot";
const simDb = dbName + "_sim";
const required = ["MONGO_APP_USER", "MONGO_APP_PASSWORD", "MONGO_READONLY_USER", "MONGO_READONLY_PASSWORD"];
for (const name of required) {
  if (!process.env[name]) {
    throw new Error(name + " is not set; see .env.example");
  }
}
const admin = db.getSiblingDB("admin");
admin.createUser({
  user: process.env.MONGO_APP_USER,
  pwd: process.env.MONGO_APP_PASSWORD,
  roles: [
    { role: "readWrite", db: dbName },
    { role: "readWrite", db: simDb },
  ],
});
admin.createUser({
  user: process.env.MONGO_READONLY_USER,
  pwd: process.env.MONGO_READONLY_PASSWORD,
  roles: [
    { role: "read", db: dbName },
    { role: "read", db: simDb },
  ],
});
print("cryptobot: created users " + process.env.MONGO_APP_USER + " (readWrite) and " +
      process.env.MONGO_READONLY_USER + " (read) on " + dbName + " and " + simDb);
