package runtime

var reduceOps = []opDef{}
